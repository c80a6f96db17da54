import ERPCore
import ERPReports
import ERPScenario
import ERPTestSupport
import Foundation
import Testing

@Suite struct FixtureTests {
    @Test func fixturesHaveWhatTheIssueAsks() throws {
        let f = try loadFixtures()
        #expect(f.products.count >= 20)
        #expect(f.shops.count >= 3)
        #expect(f.customers.count >= 100)
        for shop in f.shops { #expect(shop.stock.allSatisfy { f.product($0.productId) != nil && $0.quantity > 0 }) }
    }
}
