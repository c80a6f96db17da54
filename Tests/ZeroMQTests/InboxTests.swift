import Testing
@testable import ZeroMQ

@Suite("Bounded inbox")
struct InboxTests {
    @Test("A slow consumer behind a tiny inbox still gets every message, in order")
    func backpressure() async throws {
        let fixture = try Fixture()
        var pullOptions = SocketOptions.plaintext
        pullOptions.inboxCountMax = 4
        let pull = try await fixture.io.open(.pull, options: pullOptions)
        let endpoint = try await pull.bind("tcp://127.0.0.1:*")
        let push = try await fixture.io.open(.push, options: .plaintext)
        try await push.connect(endpoint)
        try await waitUntilConnected(push, .tcp)

        let count = 2_000
        let producer = Task {
            for index in 0..<count { try await push.send(frames: [bytes("\(index)")]) }
        }
        for index in 0..<count {
            if index % 200 == 0 { try await Task.sleep(for: .milliseconds(5)) }
            let message = try await receive(pull)
            #expect(message.frames == [bytes("\(index)")])
            if message.frames != [bytes("\(index)")] { break }
        }
        try await producer.value
        #expect(pull.counters.messagesReceived == count)
        #expect(pull.counters.inboxFullPauses >= 1)
        #expect(pull.messages.count == 0)
        await fixture.finish()
    }

    @Test("Handler delivery runs on the I/O thread in order")
    func handlerDelivery() async throws {
        let fixture = try Fixture()
        let seen = Seen()
        let pull = try await fixture.io.open(.pull, options: .plaintext, delivery: .handler { message, _ in
            seen.append(message)
        })
        let endpoint = try await pull.bind(try Transport.inproc.bindEndpoint())
        let push = try await fixture.io.open(.push, options: .plaintext)
        try await push.connect(endpoint)
        for index in 0..<50 { try await push.send(frames: [bytes("\(index)")]) }
        #expect(await eventually { seen.count == 50 })
        #expect(seen.all.map(\.frames) == (0..<50).map { [bytes("\($0)")] })
        // A handler socket's stream is empty.
        var iterator = pull.messages.makeAsyncIterator()
        #expect(await iterator.next() == nil)
        await fixture.finish()
    }
}

final class Seen: Sendable {
    private let messages = Locked<[ZMQMessage]>([])
    func append(_ message: ZMQMessage) { messages.withLock { $0.append(message) } }
    var all: [ZMQMessage] { messages.withLock { $0 } }
    var count: Int { messages.withLock { $0.count } }
}
