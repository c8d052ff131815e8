import IMDSCore
import ServiceLifecycle

/// Keeps STS credentials fresh for every instance configured with `assume-role`, as a service of
/// the server's `ServiceGroup` (it stops on graceful shutdown).
public struct CredentialRefresher: Service {
    let provider: AssumeRoleProvider
    let store: any InstanceStore

    public init(provider: AssumeRoleProvider, store: any InstanceStore) {
        self.provider = provider
        self.store = store
    }

    public func run() async throws {
        let provider = self.provider, store = self.store
        await cancelWhenGracefulShutdown { await provider.run(store: store) }
    }
}
