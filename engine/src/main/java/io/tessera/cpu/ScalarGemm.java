package io.tessera.cpu;

import java.lang.foreign.ValueLayout;

/** GEMM in plain Java: the reference for {@link SimdGemm}. */
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
                    dot += g.a().getAtIndex(FLOAT, g.aOff() + i * g.aRow() + p * g.aCol())
                            * g.b().getAtIndex(FLOAT, g.bOff() + p * g.bRow() + j * g.bCol());
                }
                float old = g.beta() == 0f ? 0f : g.beta() * g.c().getAtIndex(FLOAT, cRow + j);
                g.c().setAtIndex(FLOAT, cRow + j, g.alpha() * dot + old);
            }
        }
    }
}
