import Foundation

/// A tag on an instance, as the store keeps it.
public struct InstanceTag: Sendable, Equatable, Hashable, Codable {
    public var key: String
    public var value: String
    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// One typed change to the state an ``InstanceStore`` owns. The EC2 API and the admin API translate
/// requests into these; nothing else writes state. A batch of changes is applied atomically and is
/// one record in the journal, so every case is `Codable`.
public enum StoreChange: Sendable, Equatable, Codable {
    /// `ModifyInstanceMetadataOptions`: the options from now on.
    case setOptions(instanceID: String, MetadataOptions)
    /// `CreateTags` / `DeleteTags`: the instance's tags from now on.
    case setTags(instanceID: String, [InstanceTag])
    /// `ModifyInstanceMetadataDefaults`: the account's defaults from now on (instances launched later).
    case setAccountDefaults(AccountDefaults)
    /// The instance's events from now on (scheduled, cleared, completed, canceled).
    case setEvents(instanceID: String, [InstanceEvent])
    /// Back to the events of the config file's timeline (a reload).
    case resetEvents(instanceID: String)
    /// The credential situation served from now on.
    case setCredentialScenario(instanceID: String, CredentialScenario)
    /// Every token issued so far for the instance stops being accepted.
    case invalidateTokens(instanceID: String)
    /// The active faults from now on.
    case setFaults([Fault])
    /// A fault becomes active.
    case addFault(Fault)
    /// Removes one fault (nil: all of them).
    case removeFaults(id: String?)
    /// One use of a counted fault (the data plane applied it); removed when its count reaches 0.
    case consumeFault(id: String)
    /// Back to the faults of the config file (a reload).
    case resetFaults
    /// The secret that keys tokens and generated credentials (32 bytes).
    case setSecret([UInt8])
    /// `RunInstances`: a new instance, served (running) from the batch on.
    case launch(LaunchSpec)
    /// `StopInstances`, `StartInstances`, `TerminateInstances`: the instance's state from now on
    /// (only a running instance is served; a terminated one frees its addresses).
    case setState(instanceID: String, InstanceState)

    /// The instance the change is about, if it concerns one.
    public var instanceID: String? {
        switch self {
        case .setOptions(let id, _), .setTags(let id, _), .setEvents(let id, _), .resetEvents(let id),
            .setCredentialScenario(let id, _), .invalidateTokens(let id), .setState(let id, _):
            id
        case .launch(let spec):
            spec.instanceID
        case .setAccountDefaults, .setFaults, .addFault, .removeFaults, .consumeFault, .resetFaults, .setSecret:
            nil
        }
    }
}

/// Why a batch of changes was refused or could not be made durable; nothing of the batch was applied.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A change names an instance the store does not serve.
    case unknownInstance(String)
    /// A change names a fault that is not active (or a counted fault already used up).
    case unknownFault(String)
    /// A change is not valid in itself (for example a secret that is not 32 bytes).
    case invalid(String)
    /// The batch could not be written durably; the state is as before the batch.
    case notDurable(String)
    /// The store (a database) cannot be reached now; nothing was changed. EC2 answers
    /// `ServiceUnavailable` (503).
    case unavailable(String)
    /// The store was shut down.
    case closed

    public var description: String {
        switch self {
        case .unknownInstance(let id): "the instance ID '\(id)' does not exist"
        case .unknownFault(let id): "no fault '\(id)'"
        case .invalid(let why): why
        case .notDurable(let why): "the change could not be saved (\(why)); nothing was changed"
        case .unavailable(let why): "the instance store is unreachable (\(why)); nothing was changed, try again later"
        case .closed: "the store is closed"
        }
    }
}

/// A store revision: increases with every batch applied; a batch's revision is returned once it is
/// durable.
public typealias StoreRevision = UInt64
