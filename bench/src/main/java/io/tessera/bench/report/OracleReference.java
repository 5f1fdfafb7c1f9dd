package io.tessera.bench.report;

/**
 * What an engine's result is checked against: the float64 oracle (an output, gradients, …) and the
 * tolerance of the check. Computed apart from the engines' runs, so that the oracles of several
 * cases can be computed at once on every core while nothing is timed, or once per JVM for states
 * that share their inputs.
 */
public record OracleReference<O>(O oracle, double tolerance) {}
