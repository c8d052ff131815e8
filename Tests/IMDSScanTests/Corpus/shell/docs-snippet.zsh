#!/bin/zsh
# zsh is scanned but not rewritten by --fix.
local md=http://169.254.169.254/latest/meta-data
curl -s $md/instance-id
