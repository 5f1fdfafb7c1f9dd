package io.tessera.bench.report;

/**
 * One measured configuration.
 *
 * @param engine        "tessera" or a peer id
 * @param engineLabel   display name, e.g. "Tessera simd" or "ONNX Runtime 1.29"
 * @param pattern       pattern name ("dense", "causal", …)
 * @param n             sequence length (qLen = kvLen)
 * @param threads       threads used
 * @param msPerCall     time per call: the median of the timed calls ({@link MedianTime}) for the main job's forward cases
 * @param msError       its uncertainty: the half-width of the median's 95 % confidence interval ({@link MedianTime})
 * @param gflops        effective GFLOP/s: FLOPs of the allowed pairs (4·pairs·D·H) over time
 * @param heapBytesPerCall heap allocation per call by all threads (JMH gc profiler in a fork; the thread MXBean, median over the rounds, in turns), or NaN when not measured
 */
public record Measurement(String engine, String engineLabel, String pattern, int n, int threads,
                          double msPerCall, double msError, double gflops, double heapBytesPerCall) {}
