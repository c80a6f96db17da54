import ERPCore
import ERPTransport
import ERPZeroMQ
import Foundation
import Logging

/// A caller of a running topology's services from outside it (a command-line tool): it speaks with
/// one of the client keys the topology admits (`security.clients`), never a service's own key, so
/// a tool is a peer the services can tell apart.
public final class TopologyClient: @unchecked Sendable {
    // @unchecked Sendable: every stored property is immutable and itself thread-safe.
    let transport: ZeroMQTransport
    let executor: SerialTaskExecutor
    let clock = SystemClock()
    private let authenticator: ZAPAuthenticator?

    private init(transport: ZeroMQTransport, executor: SerialTaskExecutor, authenticator: ZAPAuthenticator?) {
        self.transport = transport
        self.executor = executor
        self.authenticator = authenticator
    }

    /// Connects as `client` (a name in the topology's `security.clients`, whose key pair is in its
    /// key folder). Refused, saying why, when the topology does not admit that client.
    public static func connect(to topology: Topology, as client: String) async throws -> TopologyClient {
        let book = AddressBook()
        let keys = topology.keyDirectory.map(KeyStore.init(directory:))
        for (service, endpoint) in topology.endpoints {
            book.set(NodeName(service), .init(endpoint: endpoint, curvePublicKey: try keys?.publicKey(of: service)))
            book.set(service, servedBy: NodeName(service))
        }
        let context = try ZMQContext()
        let security: ZeroMQTransport.Security
        var authenticator: ZAPAuthenticator?
        if let keys {
            guard topology.clients.contains(client) else {
                throw KeyStoreError("\(topology.path): '\(client)' is not among the clients it admits (security.clients: \(topology.clients.joined(separator: ", ")))")
            }
            security = .curve(try keys.keyPair(named: client))
            // Nobody calls the tool: its own socket admits no key.
            authenticator = try await ZAPAuthenticator.start(context: context, allowedClientPublicKeys: []) { _ in }
        } else {
            security = .plaintext
        }
        let executor = SerialTaskExecutor(name: client)
        var logger = Logger(label: "erp.\(client)")
        logger.logLevel = .error
        let transport = ZeroMQTransport(node: NodeName(client), endpoint: "tcp://127.0.0.1:*", addressBook: book, context: context,
                                        security: security, executor: executor, clock: SystemClock(), logger: logger)
        _ = try await transport.start()
        return TopologyClient(transport: transport, executor: executor, authenticator: authenticator)
    }

    /// Calls `request`'s service, waiting at most `timeout`.
    public func call<R: RPCRequest>(_ request: R, timeout: Duration = .seconds(5)) async throws -> R.Response {
        let metadata = CallMetadata(deadline: clock.now + timeout, correlationId: "cli-\(UInt64.random(in: 0...UInt64.max))")
        return try await transport.call(request, to: nil, metadata: metadata)
    }

    public func close() async {
        await transport.stop()
        await authenticator?.stop()
        executor.shutdown()
    }
}
