package io.tessera.cpu;

import java.lang.foreign.ValueLayout;

/** GEMM in plain Java: the reference for {@link SimdGemm}. Half-precision a and b are widened as read. */
final class ScalarGemm {
    private ScalarGemm() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** Rows [rowFrom, rowTo) of c. */
    static void rows(GemmCall g, int rowFrom, int rowTo) {
        for (int i = rowFrom; i < rowTo; i++) {
            long cRow = g.cOff() + i * g.cRow();
            for (int j = 0; j < g.n(); j++) {
                float dot = 0f;
                for (int p = 0; p < g.k(); p++) {
                    dot += g.aType().get(g.a(), g.aOff() + i * g.aRow() + p * g.aCol())
                            * g.bType().get(g.b(), g.bOff() + p * g.bRow() + j * g.bCol());
                }
                float old = g.beta() == 0f ? 0f : g.beta() * g.c().getAtIndex(FLOAT, cRow + j);
                g.c().setAtIndex(FLOAT, cRow + j, g.alpha() * dot + old);
            }
        }
    }
}
