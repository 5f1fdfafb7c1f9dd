package io.tessera.layout;

/**
 * Anything that yields the block layouts of an attention call: a pattern, per-head patterns, or a
 * fixed pre-compiled layout. The attention API asks for layouts at the block sizes its backend
 * prefers, so the same spec serves every backend.
 */
@FunctionalInterface
public interface LayoutSpec {
    HeadLayouts layouts(int heads, int qLen, int kvLen, int blockQ, int blockKV);

    /** Dense attention: every tile FULL. */
    static LayoutSpec dense() {
        return (heads, qLen, kvLen, blockQ, blockKV) -> HeadLayouts.shared(BlockLayout.dense(qLen, kvLen, blockQ, blockKV));
    }
}
