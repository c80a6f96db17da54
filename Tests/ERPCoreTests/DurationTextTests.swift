import ERPCore
import Testing

@Suite struct DurationTextTests {
    /// A scenario author read "at 1583333333ns: power loss everywhere, restart after
    /// 166666667ns" in a run stretched by --duration, and "restart after 82800s" for 23 h.
    @Test(arguments: [
        (Duration.nanoseconds(1_583_333_333), "1.583s"),
        (.nanoseconds(166_666_667), "166.667ms"),
        (.nanoseconds(83_333_333), "83.333ms"),
        (.nanoseconds(1_583_333_000), "1.583s"),
        (.nanoseconds(40_000), "40us"),
        (.nanoseconds(1_500), "1.5us"),
        (.nanoseconds(-2_500_000_001), "-2.5s"),
        (.seconds(82_800), "23h"),
        (.seconds(5), "5s"),
        (.milliseconds(250), "250ms"),
        (.milliseconds(1_500), "1.5s"),
        (.zero, "0s"),
    ])
    func readableDurations(duration: Duration, text: String) {
        #expect(duration.readable == text)
    }

    /// Files and traces keep the exact form.
    @Test func shortDescriptionStaysExact() {
        #expect(Duration.nanoseconds(1_583_333_333).shortDescription == "1583333333ns")
        #expect(Duration.seconds(82_800).shortDescription == "82800s")
    }
}
