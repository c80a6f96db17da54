/// The world's timers: a binary min-heap ordered by (time, insertion order) whose entries are
/// small (24 bytes) while the actions sit still in slots beside it, so sifting moves little; and
/// an entry can be cancelled in O(log n), which keeps call timeouts from piling up in the heap
/// once their reply has come.
struct TimerQueue<Action> {
    struct Entry {
        var time: Int64
        var sequence: UInt64
        var slot: Int32
        @inline(__always) func precedes(_ other: Entry) -> Bool {
            time != other.time ? time < other.time : sequence < other.sequence
        }
    }

    private var heap: [Entry] = []
    private var actions: [Action?] = []
    /// Heap index of each slot's entry; -1 for a free slot.
    private var position: [Int32] = []
    private var freeSlots: [Int32] = []
    private var sequence: UInt64 = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var minTime: Int64? { heap.first?.time }

    /// Adds a timer; the returned slot cancels it.
    @discardableResult
    mutating func insert(time: Int64, _ action: Action) -> Int32 {
        sequence &+= 1
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            actions[Int(slot)] = action
        } else {
            slot = Int32(actions.count)
            actions.append(action)
            position.append(-1)
        }
        heap.append(Entry(time: time, sequence: sequence, slot: slot))
        position[Int(slot)] = Int32(heap.count - 1)
        siftUp(heap.count - 1)
        return slot
    }

    /// Removes and returns the earliest timer.
    mutating func popMin() -> (time: Int64, action: Action)? {
        guard let top = heap.first else { return nil }
        removeEntry(at: 0)
        return (top.time, release(top.slot))
    }

    /// Cancels the timer in `slot`, if it is still waiting.
    mutating func cancel(_ slot: Int32) {
        let index = Int(position[Int(slot)])
        guard index >= 0 else { return }
        removeEntry(at: index)
        _ = release(slot)
    }

    private mutating func release(_ slot: Int32) -> Action {
        let action = actions[Int(slot)].take()!
        position[Int(slot)] = -1
        freeSlots.append(slot)
        return action
    }

    private mutating func removeEntry(at index: Int) {
        let last = heap.count - 1
        if index != last {
            heap.swapAt(index, last)
            position[Int(heap[index].slot)] = Int32(index)
        }
        heap.removeLast()
        if index < heap.count {
            siftDown(index)
            siftUp(index)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        let entry = heap[i]
        while i > 0 {
            let parent = (i - 1) / 2
            guard entry.precedes(heap[parent]) else { break }
            heap[i] = heap[parent]
            position[Int(heap[i].slot)] = Int32(i)
            i = parent
        }
        heap[i] = entry
        position[Int(entry.slot)] = Int32(i)
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let entry = heap[i]
        let n = heap.count
        while true {
            let left = 2 * i + 1
            guard left < n else { break }
            var child = left
            if left + 1 < n, heap[left + 1].precedes(heap[left]) { child = left + 1 }
            guard heap[child].precedes(entry) else { break }
            heap[i] = heap[child]
            position[Int(heap[i].slot)] = Int32(i)
            i = child
        }
        heap[i] = entry
        position[Int(entry.slot)] = Int32(i)
    }
}
