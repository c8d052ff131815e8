import IMDSCore

extension ListenerLimits {
    /// These limits with data-plane connections counted per **instance** while the store serves a
    /// fleet: every connection from any of an instance's addresses (private IPv4, IPv6, caller
    /// addresses) counts against one ``maxConnectionsPerSource``, so an instance cannot take more
    /// of the listener by using more addresses, and one noisy instance's idle connections are shed
    /// before anyone else's. A caller that is no instance's, and every caller while one instance is
    /// served, is counted by ``connectionKey`` as before (its address by default).
    ///
    /// The lookup is the snapshot's address index (one hash probe), done once per connection.
    public func keyingConnectionsByInstance(of store: any InstanceStore) -> ListenerLimits {
        var limits = self
        let byAddress = connectionKey
        limits.connectionKey = { local, remote in
            let current = store.current
            if current.snapshot.instanceCount > 1, let ip = remote?.ip, let id = current.snapshot.instanceID(forCaller: ip) {
                return "instance " + id
            }
            return byAddress(local, remote)
        }
        return limits
    }
}
