// ERPTransport is what a service sees of the world: the `Transport` (typed RPC with deadlines,
// correlation and idempotency keys) and the `Runtime` (clock, randomness, ids, sleeping, spawning,
// storage, logging, tracing). Backends implement these protocols; services depend on nothing else.
// Events ride on RPC to and from the event-bus service (see `OutboxRelay` and `EventConsumer`),
// so the delivery guarantee is the same on every backend.
import ERPCore
import ERPWire
import Foundation
import Logging

/// What a handler knows about the call it serves.
public struct CallContext: Sendable {
    public var metadata: CallMetadata
    public var caller: NodeName
    public init(metadata: CallMetadata, caller: NodeName) { self.metadata = metadata; self.caller = caller }
    public var deadline: Timestamp { metadata.deadline }
    public var correlationId: String { metadata.correlationId }
    public var idempotencyKey: String? { metadata.idempotencyKey }
}

/// Typed RPC between nodes. Twins: the simulator's `SimTransport` and the ZeroMQ backend's
/// transport. Errors thrown by `call` are always `RPCError`.
public protocol Transport: Sendable {
    /// The node this transport sends from.
    var node: NodeName { get }

    /// Sends `request` to `destination` (by default the node serving `R.service`) and waits for the
    /// answer until `metadata.deadline`.
    func call<R: RPCRequest>(_ request: R, to destination: NodeName?, metadata: CallMetadata) async throws -> R.Response

    /// Serves `R.method` on this node. A handler throws `RPCError` to answer with an error;
    /// anything else it throws is answered as `rejected(internal)`.
    func register<R: RPCRequest>(_ type: R.Type, handler: @escaping @Sendable (R, CallContext) async throws -> R.Response)
}

extension Transport {
    public func call<R: RPCRequest>(_ request: R, metadata: CallMetadata) async throws -> R.Response {
        try await call(request, to: nil, metadata: metadata)
    }
}

/// Type-erased handlers, keyed by method, for backends to dispatch on. Two paths per method:
/// values (the simulator hands requests over as they are) and JSON bytes (a backend whose requests
/// cross a wire: the request is decoded with `WireJSON` as `R`, the response encoded likewise).
public struct HandlerTable: Sendable {
    public typealias Erased = @Sendable (any Sendable, CallContext) async -> Result<any Sendable, RPCError>
    /// Takes the request's JSON, answers the response's JSON or a typed error. An undecodable
    /// request is `rejected(bad_request)`, an unencodable response `rejected(internal)`.
    public typealias Encoded = @Sendable ([UInt8], CallContext) async -> Result<[UInt8], RPCError>
    private var handlers: [String: Erased] = [:]
    private var encodedHandlers: [String: Encoded] = [:]

    public init() {}

    public mutating func register<R: RPCRequest>(_ type: R.Type, handler unscoped: @escaping @Sendable (R, CallContext) async throws -> R.Response) {
        // Every handler runs inside its call's correlation scope, on either path.
        let handler: @Sendable (R, CallContext) async throws -> R.Response = { request, context in
            try await CorrelationScope.$correlationId.withValue(context.correlationId) { try await unscoped(request, context) }
        }
        encodedHandlers[R.method] = { body, context in
            let request: R
            do {
                request = try WireJSON.decode(R.self, from: body)
            } catch {
                return .failure(.rejected(code: "bad_request", message: "cannot decode \(R.method) request: \(error)"))
            }
            let response: R.Response
            do {
                response = try await handler(request, context)
            } catch let error as RPCError {
                return .failure(error)
            } catch {
                return .failure(.rejected(code: "internal", message: String(describing: error)))
            }
            do {
                return .success(try WireJSON.encode(response))
            } catch {
                return .failure(.rejected(code: "internal", message: "cannot encode \(R.method) response: \(error)"))
            }
        }
        handlers[R.method] = { payload, context in
            guard let request = payload as? R else {
                return .failure(.rejected(code: "bad_request", message: "payload is not \(R.self)"))
            }
            do {
                return .success(try await handler(request, context))
            } catch let error as RPCError {
                return .failure(error)
            } catch {
                return .failure(.rejected(code: "internal", message: String(describing: error)))
            }
        }
    }

    public func handler(for method: String) -> Erased? { handlers[method] }
    public func encodedHandler(for method: String) -> Encoded? { encodedHandlers[method] }
    public mutating func removeAll() {
        handlers.removeAll()
        encodedHandlers.removeAll()
    }
}
