// Header-only module; SwiftPM wants one source file.
#include "CLinuxEpoll.h"
