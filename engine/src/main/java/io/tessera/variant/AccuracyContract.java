package io.tessera.variant;

/**
 * What a variant promises relative to dense softmax attention, in words a property test can check.
 * A variant whose forward takes BF16/F16 tensors keeps its promise on the rounded (stored) inputs,
 * plus one rounding of the output to its type ({@code Tolerance.stored}): it runs its float32 path
 * on float32 copies of them and rounds the output once.
 *
 * @param kind      the class of promise
 * @param statement the promise itself, with its tolerance, e.g. "max-abs error ≤ 10× naive fp32 dense + 1e-5"
 */
public record AccuracyContract(Kind kind, String statement) {
    public enum Kind {
        /** Equals (masked) dense attention up to fp32 rounding: same function, different schedule. */
        EXACT,
        /** Approximates dense attention; the error is bounded or shrinks as a parameter grows. */
        APPROXIMATION,
        /** A different function from softmax attention; checked against its own float64 definition. */
        OWN_DEFINITION
    }

    public AccuracyContract {
        if (kind == null) throw new NullPointerException("kind");
        if (statement == null || statement.isBlank()) throw new IllegalArgumentException("statement must be non-blank");
    }

    public static AccuracyContract exact(String statement) { return new AccuracyContract(Kind.EXACT, statement); }
    public static AccuracyContract approximation(String statement) { return new AccuracyContract(Kind.APPROXIMATION, statement); }
    public static AccuracyContract ownDefinition(String statement) { return new AccuracyContract(Kind.OWN_DEFINITION, statement); }
}
