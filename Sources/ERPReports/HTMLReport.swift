import Foundation

/// What a run looked like over time, for the HTML report: each order's latency at the time it was
/// sent, the fault windows and the phases.
public struct RunTimeline: Sendable {
    public struct Point: Sendable {
        /// Seconds since the chaos phase began, when the order was meant to be sent.
        public var t: Double
        public var milliseconds: Double
        public var outcome: String
        public init(t: Double, milliseconds: Double, outcome: String) { self.t = t; self.milliseconds = milliseconds; self.outcome = outcome }
    }
    public struct Window: Sendable {
        public var start: Double
        public var end: Double
        public var label: String
        public init(start: Double, end: Double, label: String) { self.start = start; self.end = end; self.label = label }
    }
    public var points: [Point]
    public var faults: [Window]
    public var chaosSeconds: Double
    public var healSeconds: Double
    public init(points: [Point], faults: [Window], chaosSeconds: Double, healSeconds: Double) {
        self.points = points; self.faults = faults; self.chaosSeconds = chaosSeconds; self.healSeconds = healSeconds
    }
}

/// `report.html`: one self-contained file (inline CSS and SVG, no script, no network) a person
/// opens in a browser: the verdict and the reproduce command, every invariant with its
/// counter-examples, order latency over time with the fault windows shaded, throughput, latency per
/// flow, per phase, per RPC method and per event hop, the fault timeline and the call policies.
public enum HTMLReport {
    public static func render(_ summary: RunSummary, timeline: RunTimeline) -> String {
        let passed = summary.invariantsPass && summary.expectationFailures.isEmpty
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>\(e(summary.scenario)) · seed \(summary.seed) · \(passed ? "PASS" : "FAIL")</title>
            <style>
            body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330;padding:0 16px}
            h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
            .badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
            .pass{background:#2e7d32}.fail{background:#c62828}.skip{background:#8a94a6}
            code,pre{font:12.5px ui-monospace,monospace;background:#f3f5f8;border-radius:4px;padding:2px 5px}
            table{border-collapse:collapse;width:100%;margin:6px 0}td,th{border-bottom:1px solid #e8ebf0;padding:4px 8px;text-align:left;vertical-align:top}
            th{background:#f7f8fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
            ul.examples{margin:2px 0 0 16px;padding:0;color:#8a1c1c}svg{background:#fff;border:1px solid #e3e7ee;border-radius:6px}
            .muted{color:#6b7385}
            </style></head><body>
            <h1>\(e(summary.scenario)) <span class="badge \(passed ? "pass" : "fail")">\(passed ? "PASS" : "FAIL")</span></h1>
            <div class="muted">mode \(e(summary.mode)) · seed \(summary.seed) · chaos \(ms(Double(summary.chaosMilliseconds))) · heal \(ms(Double(summary.healMilliseconds))) · \(summary.wallSeconds) s of wall time\(summary.traceHash.map { " · trace <code>\(e(String($0.prefix(16))))…</code>" } ?? "")\(summary.plantedText.map { " · <strong>planted: \(e($0))</strong>" } ?? "")</div>
            <p>Reproduce: <code>\(e(summary.reproduce))</code></p>

            """
        html += "<h2>Invariants</h2><table><tr><th>invariant</th><th>verdict</th></tr>"
        for name in summary.invariants.keys.sorted() {
            let pass = summary.invariants[name] == .pass
            let examples = summary.counterExamples(of: name)
            html += "<tr><td>\(e(name))"
            if !examples.isEmpty { html += "<ul class=\"examples\">" + examples.map { "<li>\(e($0))</li>" }.joined() + "</ul>" }
            if let all = summary.violationCounts?[name], all > examples.count {
                html += "<p>\(examples.count) of \(all) counter-examples shown</p>"
            }
            html += "</td><td><span class=\"badge \(pass ? "pass" : "fail")\">\(pass ? "pass" : "fail")</span></td></tr>"
        }
        for failure in summary.expectationFailures {
            html += "<tr><td>expectation: \(e(failure))</td><td><span class=\"badge fail\">fail</span></td></tr>"
        }
        html += "</table>"

        let o = summary.orders
        if summary.databasesDamaged {
            html += "<h2>Orders</h2><p>\(o.submitted) submitted; the rest \(e(RunSummary.notJudgedForDamage)).</p>"
        } else {
            html += "<h2>Orders</h2><table><tr><th>submitted</th><th>accepted</th><th>confirmed</th><th>cancelled</th><th>pending</th><th>client gave up</th><th>cancelled because</th></tr>"
            html += "<tr><td class=n>\(o.submitted)</td><td class=n>\(o.accepted)</td><td class=n>\(o.confirmed)</td><td class=n>\(o.cancelled)</td><td class=n>\(o.pending)</td><td class=n>\(o.clientGaveUp)</td><td>\(e(o.cancelReasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))</td></tr></table>"
        }
        if summary.vends.submitted > 0 {
            let v = summary.vends
            html += "<p>Vends: \(v.submitted) submitted, \(v.dispensed) dispensed, \(v.refused) refused, \(v.pending) pending, \(v.clientGaveUp) given up.</p>"
        }

        html += "<h2>Order latency over time</h2><p class=\"muted\">Each dot is an order, at the time it was meant to be sent (so a stall shows as a column of slow orders, not a gap); shaded bands are faults, the grey area the heal phase.</p>"
        html += latencyChart(timeline)
        html += "<h2>Throughput</h2><p class=\"muted\">Orders that reached an outcome, per second of their send time.</p>"
        html += throughputChart(timeline)

        html += "<h2>Latency (\(summary.mode == "simulation" ? "virtual" : "wall-clock") ms)</h2>"
        let flows = summary.latency.keys.filter { !$0.hasPrefix("rpc ") && !$0.hasPrefix("hop ") }.sorted()
        let rpcs = summary.latency.keys.filter { $0.hasPrefix("rpc ") }.sorted()
        let hops = summary.latency.keys.filter { $0.hasPrefix("hop ") }.sorted()
        for (title, keys) in [("Flows and phases", flows), ("Per RPC method (caller's side)", rpcs), ("Per event hop (publish → consumer commit)", hops)] where !keys.isEmpty {
            html += "<h3>\(title)</h3><table><tr><th>name</th><th>n</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>"
            for key in keys {
                let l = summary.latency[key]!
                html += "<tr><td>\(e(key))</td><td class=n>\(l.count)</td><td class=n>\(l.p50)</td><td class=n>\(l.p90)</td><td class=n>\(l.p99)</td><td class=n>\(l.p999)</td><td class=n>\(l.max)</td></tr>"
            }
            html += "</table>"
        }

        html += "<h2>Fault timeline</h2>"
        if timeline.faults.isEmpty { html += "<p>No faults.</p>" } else {
            html += "<table><tr><th>from (s)</th><th>to (s)</th><th>fault</th></tr>"
            for w in timeline.faults { html += "<tr><td class=n>\(seconds(w.start))</td><td class=n>\(seconds(w.end))</td><td>\(e(w.label))</td></tr>" }
            html += "</table>"
        }
        if !summary.resilience.isEmpty {
            html += "<h2>Call policies</h2><table><tr><th>path</th><th>calls</th><th>attempts</th><th>retries</th><th>failed</th><th>breaker opened</th><th>half-open</th><th>closed</th><th>rejected</th><th>state</th></tr>"
            for path in summary.resilience.keys.sorted() {
                let r = summary.resilience[path]!
                html += "<tr><td>\(e(path))</td><td class=n>\(r.calls)</td><td class=n>\(r.attempts)</td><td class=n>\(r.retries)</td><td class=n>\(r.failedCalls)</td><td class=n>\(r.breakerOpened)</td><td class=n>\(r.breakerHalfOpened)</td><td class=n>\(r.breakerClosed)</td><td class=n>\(r.breakerRejections)</td><td>\(e(r.breakerState))</td></tr>"
            }
            html += "</table>"
        }
        if !summary.eventVersions.isEmpty {
            html += "<h2>Events on the bus</h2><p>" + summary.eventVersions.sorted { $0.key < $1.key }.map { "\(e($0.key)) ×\($0.value)" }.joined(separator: " · ")
                + " · dead letters \(summary.deadLetters)</p>"
        }
        html += "<p class=\"muted\">Written by erp; summary.json has the same figures (docs/report-format.md).</p></body></html>\n"
        return html
    }

    // MARK: Charts

    static let width = 1000.0, height = 300.0, left = 60.0, right = 16.0, top = 14.0, bottom = 34.0

    static func latencyChart(_ t: RunTimeline) -> String {
        let span = max(t.chaosSeconds + t.healSeconds, 0.001)
        let values = t.points.map(\.milliseconds).sorted()
        let p99 = values.isEmpty ? 1 : values[min(values.count - 1, Int(Double(values.count) * 0.99))]
        let yMax = niceCeiling(max(p99 * 1.25, 1))
        func x(_ s: Double) -> Double { left + (width - left - right) * min(max(s / span, 0), 1) }
        func y(_ v: Double) -> Double { top + (height - top - bottom) * (1 - min(v / yMax, 1)) }
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"100%\" role=\"img\" aria-label=\"order latency over time\">"
        svg += "<rect x=\"\(f(x(t.chaosSeconds)))\" y=\"\(f(top))\" width=\"\(f(x(span) - x(t.chaosSeconds)))\" height=\"\(f(height - top - bottom))\" fill=\"#eef0f3\"><title>heal phase</title></rect>"
        for (i, w) in t.faults.enumerated() {
            svg += "<rect x=\"\(f(x(w.start)))\" y=\"\(f(top))\" width=\"\(f(max(1, x(w.end) - x(w.start))))\" height=\"\(f(height - top - bottom))\" fill=\"\(palette[i % palette.count])\" fill-opacity=\"0.18\"><title>\(e(w.label))</title></rect>"
        }
        for tick in 0...4 {
            let v = yMax * Double(tick) / 4
            svg += "<line x1=\"\(f(left))\" x2=\"\(f(width - right))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\" stroke=\"#e6e9ef\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" font-size=\"11\" text-anchor=\"end\" fill=\"#6b7385\">\(ms(v))</text>"
        }
        for tick in 0...10 {
            let s = span * Double(tick) / 10
            svg += "<text x=\"\(f(x(s)))\" y=\"\(f(height - 12))\" font-size=\"11\" text-anchor=\"middle\" fill=\"#6b7385\">\(seconds(s))s</text>"
        }
        // At most 6,000 dots, evenly taken, so a million-order run still opens.
        let stride = max(1, t.points.count / 6_000)
        for (i, p) in t.points.enumerated() where i % stride == 0 {
            let color = p.outcome == "confirmed" ? "#1f6feb" : p.outcome == "cancelled" ? "#d97706" : "#c62828"
            svg += "<circle cx=\"\(f(x(p.t)))\" cy=\"\(f(y(p.milliseconds)))\" r=\"2\" fill=\"\(color)\" fill-opacity=\"0.65\"/>"
        }
        svg += "<text x=\"\(f(left))\" y=\"\(f(top - 2))\" font-size=\"11\" fill=\"#6b7385\">ms · blue confirmed, orange cancelled, red other; above the top: slower than \(ms(yMax))</text>"
        return svg + "</svg>"
    }

    static func throughputChart(_ t: RunTimeline) -> String {
        let span = max(t.chaosSeconds + t.healSeconds, 0.001)
        let buckets = max(1, Int(span.rounded(.up)))
        var counts = Array(repeating: 0, count: buckets)
        for p in t.points { counts[min(buckets - 1, max(0, Int(p.t)))] += 1 }
        let yMax = niceCeiling(Double(counts.max() ?? 1))
        let h = 160.0, barWidth = (width - left - right) / Double(buckets)
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(Int(h))\" width=\"100%\" role=\"img\" aria-label=\"throughput\">"
        for (i, c) in counts.enumerated() where c > 0 {
            let bh = (h - 30) * Double(c) / max(yMax, 1)
            svg += "<rect x=\"\(f(left + Double(i) * barWidth))\" y=\"\(f(h - 20 - bh))\" width=\"\(f(max(1, barWidth - 1)))\" height=\"\(f(bh))\" fill=\"#1f6feb\" fill-opacity=\"0.7\"><title>\(i)s: \(c) orders</title></rect>"
        }
        svg += "<text x=\"\(f(left - 6))\" y=\"\(f(14))\" font-size=\"11\" text-anchor=\"end\" fill=\"#6b7385\">\(Int(yMax))/s</text>"
        return svg + "</svg>"
    }

    static let palette = ["#c62828", "#6a1b9a", "#ef6c00", "#00838f", "#2e7d32", "#ad1457"]

    static func niceCeiling(_ v: Double) -> Double {
        let magnitude = pow(10, floor(log10(max(v, 1e-9))))
        for step in [1.0, 2, 2.5, 5, 10] where step * magnitude >= v { return step * magnitude }
        return 10 * magnitude
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }
    static func seconds(_ v: Double) -> String { String(format: v.rounded() == v ? "%.0f" : "%.1f", v) }
    static func ms(_ v: Double) -> String { v >= 1000 ? String(format: "%.1fs", v / 1000) : String(format: "%.0fms", v) }

    /// HTML-escaped text.
    static func e(_ text: String) -> String { markupEscaped(text) }
}
