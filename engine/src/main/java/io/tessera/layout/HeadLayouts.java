package io.tessera.layout;

import java.util.Arrays;

/**
 * The layouts of one attention call: either one layout shared by every head, or one per query head
 * (per-head patterns). All layouts have the same lengths and block sizes.
 */
public final class HeadLayouts {
    private final BlockLayout[] layouts;

    private HeadLayouts(BlockLayout[] layouts) {
        this.layouts = layouts;
    }

    public static HeadLayouts shared(BlockLayout layout) {
        if (layout == null) throw new NullPointerException("layout");
        return new HeadLayouts(new BlockLayout[] {layout});
    }

    public static HeadLayouts perHead(BlockLayout... layouts) {
        if (layouts == null || layouts.length == 0) throw new IllegalArgumentException("layouts must list at least one layout");
        BlockLayout first = layouts[0];
        for (int h = 0; h < layouts.length; h++) {
            BlockLayout l = layouts[h];
            if (l == null) throw new NullPointerException("layouts[" + h + "]");
            if (l.qLen() != first.qLen() || l.kvLen() != first.kvLen() || l.blockQ() != first.blockQ() || l.blockKV() != first.blockKV()) {
                throw new IllegalArgumentException("layouts[" + h + "] has lengths/blocks " + l.qLen() + "x" + l.kvLen() + "/" + l.blockQ() + "x" + l.blockKV()
                        + " unlike layouts[0] " + first.qLen() + "x" + first.kvLen() + "/" + first.blockQ() + "x" + first.blockKV());
            }
        }
        return new HeadLayouts(layouts.clone());
    }

    /** The layout query head {@code head} uses. */
    public BlockLayout forHead(int head) {
        return layouts.length == 1 ? layouts[0] : layouts[head];
    }

    public boolean isShared() { return layouts.length == 1; }

    /** Number of distinct layouts: 1 when shared, else the head count. */
    public int count() { return layouts.length; }

    public BlockLayout first() { return layouts[0]; }

    /** Checks that these layouts fit a call with the given geometry; throws naming the mismatch. */
    public void check(int heads, int qLen, int kvLen) {
        if (!isShared() && layouts.length != heads) {
            throw new IllegalArgumentException("per-head layouts: " + layouts.length + " layouts for " + heads + " query heads");
        }
        if (first().qLen() != qLen || first().kvLen() != kvLen) {
            throw new IllegalArgumentException("layout compiled for qLen=" + first().qLen() + ", kvLen=" + first().kvLen()
                    + " but the call has qLen=" + qLen + ", kvLen=" + kvLen);
        }
    }

    @Override
    public String toString() {
        return isShared() ? "shared " + layouts[0].description() : "per-head " + Arrays.stream(layouts).map(BlockLayout::description).toList();
    }
}
