@testable import ERPScenario
import Testing

/// The checker's packed list of orders: ids in byte order (SQLite's BINARY collation, where "Z"
/// sorts before "a" and "é" after "z"), each with its status, found by binary search.
@Suite struct OrdersByIdTests {
    @Test func findsEveryOrderAndNoOther() {
        var orders = OrdersById()
        let rows = [("order_a", "confirmed"), ("order_b", "cancelled"), ("order_c", "pending"), ("order_d", "confirmed"), ("order_é", "refunded?")]
        for (id, status) in rows { orders.append(id: id, status: status) }
        orders.sortIfNeeded()
        #expect(orders.count == 5 && !orders.isEmpty)
        for (index, (id, status)) in rows.enumerated() {
            #expect(orders[id] == status)
            #expect(orders.id(at: index) == id && orders.status(at: index) == status)
        }
        for absent in ["", "order_", "order_aa", "order_e", "order_z", "order_éé", "ORDER_a"] { #expect(orders[absent] == nil, "\(absent)") }
        #expect(OrdersById()["order_a"] == nil && OrdersById().isEmpty)
    }

    @Test func rowsOutOfOrderAreSortedByBytes() {
        var orders = OrdersById()
        for (id, status) in [("b", "confirmed"), ("a", "cancelled"), ("Z", "pending"), ("é", "confirmed"), ("z", "cancelled")] {
            orders.append(id: id, status: status)
        }
        orders.sortIfNeeded()
        #expect((0..<orders.count).map { orders.id(at: $0) } == ["Z", "a", "b", "z", "é"])
        #expect((0..<orders.count).map { orders.status(at: $0) } == ["pending", "cancelled", "confirmed", "cancelled", "confirmed"])
        #expect(orders["z"] == "cancelled" && orders["é"] == "confirmed" && orders["Z"] == "pending" && orders["y"] == nil)
    }
}
