package io.tessera.pattern;

/**
 * Where the causal diagonal sits when the query length differs from the key length.
 *
 * <p>{@link #TOP_LEFT}: query {@code i} sees keys {@code j <= i} (PyTorch's {@code is_causal=True}).
 * {@link #BOTTOM_RIGHT}: the last query is aligned with the last key, query {@code i} sees keys
 * {@code j <= i + (kvLen - qLen)}: the convention for decoding with a KV cache (FlashAttention 2.1+,
 * PyTorch's {@code causal_lower_right}). The two agree when {@code qLen == kvLen}.
 *
 * <p>In a {@link Pattern} the alignment places the queries for every rule, not only causal: query
 * {@code i} sits at position {@code i + diagonalShift(qLen, kvLen)} (see the Positions section of
 * {@link Pattern}).
 */
public enum CausalAlignment {
    TOP_LEFT,
    BOTTOM_RIGHT;

    /** The shift added to the query index: key {@code j} is visible from query {@code i} iff {@code j <= i + shift}. */
    public long diagonalShift(int qLen, int kvLen) {
        return this == TOP_LEFT ? 0 : (long) kvLen - qLen;
    }

    public boolean allows(int q, int kv, int qLen, int kvLen) {
        return kv <= q + diagonalShift(qLen, kvLen);
    }
}
