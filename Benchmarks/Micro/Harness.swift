/// A small micro-benchmark harness (package-benchmark cannot be built here: on Swift 6.3/Linux
/// it needs swift-runtime-interposer, which the package mirror lacks). Each benchmark runs in
/// batches after a warm-up; each batch gives a time per operation; the report shows the
/// median, the 90th percentile and the best batch, in nanoseconds per operation.
struct MicroBenchmark {
    let name: String
    /// Runs `iterations` operations.
    let run: (_ iterations: Int) -> Void
}

@inline(never)
func blackHole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}

func measure(_ benchmark: MicroBenchmark, batches: Int = 40, targetBatch: Duration = .milliseconds(20)) -> (median: Double, p90: Double, best: Double) {
    let clock = ContinuousClock()
    // Calibrate a batch size that takes about `targetBatch`.
    var iterations = 64
    while true {
        let elapsed = clock.measure { benchmark.run(iterations) }
        if elapsed >= targetBatch / 4 || iterations > 1 << 26 { break }
        iterations *= 2
    }
    let scale = Double(targetBatch.components.attoseconds + targetBatch.components.seconds * 1_000_000_000_000_000_000)
        / max(1, Double(clock.measure { benchmark.run(iterations) }.attoseconds))
    iterations = max(1, Int(Double(iterations) * scale))
    for _ in 0..<3 { benchmark.run(iterations) }  // warm-up
    var perOp: [Double] = []
    for _ in 0..<batches {
        let elapsed = clock.measure { benchmark.run(iterations) }
        perOp.append(Double(elapsed.attoseconds) / 1e9 / Double(iterations))
    }
    perOp.sort()
    return (perOp[perOp.count / 2], perOp[perOp.count * 9 / 10], perOp[0])
}

extension Duration {
    var attoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000_000_000_000 + attoseconds
    }
}
