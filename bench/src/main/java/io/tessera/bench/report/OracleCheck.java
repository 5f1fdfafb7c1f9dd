package io.tessera.bench.report;

/** A peer's or backend's output on a small input compared with the float64 oracle. */
public record OracleCheck(String engineLabel, String pattern, int n, double maxAbsError, double tolerance) {
    public boolean passed() { return maxAbsError <= tolerance; }
}
