package io.tessera.pattern;

/**
 * Which (query, key) pairs may attend, as a plain function: FlexAttention's {@code mask_mod}.
 * The dense oracle takes one of these; patterns provide one with {@code Pattern#asMask()}.
 */
@FunctionalInterface
public interface MaskFunction {
    boolean allowed(int batch, int head, int q, int kv);

    /** Every pair is allowed. */
    static MaskFunction all() {
        return (b, h, q, kv) -> true;
    }

    /** Causal masking for the given lengths and alignment. */
    static MaskFunction causal(CausalAlignment alignment, int qLen, int kvLen) {
        long shift = alignment.diagonalShift(qLen, kvLen);
        return (b, h, q, kv) -> kv <= q + shift;
    }

    default MaskFunction and(MaskFunction other) {
        return (b, h, q, kv) -> allowed(b, h, q, kv) && other.allowed(b, h, q, kv);
    }

    default MaskFunction or(MaskFunction other) {
        return (b, h, q, kv) -> allowed(b, h, q, kv) || other.allowed(b, h, q, kv);
    }
}
