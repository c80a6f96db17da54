import ERPCore
import ERPTestSupport
import ERPTransport
import Testing

/// The campaign service prices from the campaigns it keeps in memory per product: each new
/// campaign must be seen by the next quote, and each quote must pick as the SQL did (the largest
/// discount in force, the oldest among equals) as the windows open and close.
@Suite struct CampaignQuoteTests {
    @Test func eachNewCampaignIsSeenByTheNextQuoteAndWindowsAreHonoured() async throws {
        let fixtures = try loadFixtures()
        let product = fixtures.shops[0].stock[0].productId
        let other = try #require(fixtures.shops[0].stock.first { $0.productId != product }).productId
        _ = try await SimulatedServices.run { transport, runtime in
            func metadata() -> CallMetadata { runtime.metadata(timeout: .seconds(2)) }
            func quote() async throws -> [String] {
                try await transport.call(QuotePrices(productIds: [product, other, product]), metadata: metadata()).discounts.map {
                    "\($0.productId == product ? "p" : "o"):\($0.percentOff)"
                }
            }
            func create(_ percentOff: Int, _ products: [String], startsIn: Int64 = 0, lasts: Int64 = 600) async throws {
                let now = runtime.clock.now.millisecondsSinceEpoch
                _ = try await transport.call(CreateCampaign(name: "c\(percentOff)", productIds: products, percentOff: percentOff,
                                                            startsAt: now + startsIn, lastsSeconds: lasts), metadata: metadata())
            }
            #expect(try await quote() == [])
            try await create(5, [product])
            #expect(try await quote() == ["p:5"])
            try await create(20, [product, other])
            #expect(try await quote() == ["p:20", "o:20"], "a campaign created after a quote is seen by the next")
            try await create(20, [other])
            let tied = try await transport.call(QuotePrices(productIds: [other]), metadata: metadata()).discounts
            #expect(tied.map(\.campaignId) == [try #require(try await transport.call(ListCampaigns(), metadata: metadata()).campaigns.first { $0.percentOff == 20 }?.campaignId)],
                    "the older of two equal discounts wins")
            try await create(50, [product], startsIn: 10_000)
            try await create(90, [other], lasts: 1)
            #expect(try await quote() == ["p:20", "o:90"])
            await runtime.sleep(for: .seconds(2))
            #expect(try await quote() == ["p:20", "o:20"], "an ended campaign no longer prices")
            await runtime.sleep(for: .seconds(9))
            #expect(try await quote() == ["p:50", "o:20"], "a campaign that starts later prices from its start")
        }
    }
}
