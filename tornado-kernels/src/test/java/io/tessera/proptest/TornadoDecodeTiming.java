package io.tessera.proptest;

import io.tessera.backend.Backend;
import io.tessera.cache.KvCache;
import io.tessera.cache.PagedAttention;
import io.tessera.layout.HeadLayouts;
import io.tessera.tensor.Tensor;
import io.tessera.tornado.DeviceRun;
import io.tessera.tornado.TornadoBackend;
import io.tessera.tensor.ElementType;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Not part of the suite (its name matches neither *Properties nor *Test): a manual, min-of-N timing
 * of one decode step (B = 1, 32 query heads over 8 KV heads, D = 128, fp32 cache) on the device,
 * through the device decode kernel and through the per-page fallback every backend without a decode
 * kernel gets (a backend that hides the tornado backend's {@code PagedAttentionDevice}). Run:
 * {@code ./tessera mvn -Ptornado -o verify -pl engine,proptest,tornado-kernels -am -Dtest=TornadoDecodeTiming
 * -Dsurefire.failIfNoSpecifiedTests=false -Dtiming.lengths=4096,32768}; {@code -Dtiming.types=F32,BF16,F16} times
 * caches of those types on the device ({@code timing.fallbackSteps=0} skips the fallback, which is F32 only).
 * TornadoVM's profile of every execution, per task (scatter, decode, merge): add
 * {@code "-Dtest.jvm.flags=-da -Dtornado.recover.bailout=False -Dtessera.tornado.profile=true"}.
 */
class TornadoDecodeTiming {

    /** The tornado backend without its decode kernel: PagedAttention falls back to one fused call per page. */
    record PerPage(Backend b) implements Backend {
        public String name() { return "tornado-per-page"; }
        public String description() { return b.description(); }
        public boolean isAvailable() { return b.isAvailable(); }
        public int priority() { return 0; }
        public int preferredBlockQ() { return b.preferredBlockQ(); }
        public int preferredBlockKV() { return b.preferredBlockKV(); }
        public Backend withThreads(int threads) { return this; }
        public void attention(Tensor q, Tensor k, Tensor v, HeadLayouts layouts, float scale, Tensor out, Tensor lse) { b.attention(q, k, v, layouts, scale, out, lse); }
        public void gemm(Tensor a, boolean ta, Tensor bb, boolean tb, Tensor c, float alpha, float beta) { b.gemm(a, ta, bb, tb, c, alpha, beta); }
    }

    @Test
    void stepTimes() {
        int kvHeads = 8, heads = 32, d = 128;
        int pageSize = Integer.getInteger("timing.pageSize", 16);
        int fallbackPageSize = Integer.getInteger("timing.fallbackPageSize", 256);
        int steps = Integer.getInteger("timing.steps", 10), fallbackSteps = Integer.getInteger("timing.fallbackSteps", 2);
        Backend tornado = Backend.named("tornado");
        for (String l : System.getProperty("timing.lengths", "4096,32768").split(",")) {
            int length = Integer.parseInt(l.trim());
            List<ElementType> runs = new ArrayList<>();
            for (String t : System.getProperty("timing.types", "F32").split(",")) runs.add(ElementType.valueOf(t.trim()));
            if (fallbackSteps > 0) runs.add(null);   // null: the per-page fallback, F32
            for (ElementType type : runs) {
                boolean device = type != null;
                int page = device ? pageSize : fallbackPageSize;
                int n = device ? steps : fallbackSteps;
                try (Arena arena = Arena.ofShared()) {
                    int pages = (length + n + 1 + page - 1) / page + 1;
                    KvCache cache = KvCache.allocate(arena, device ? type : ElementType.F32, 1, pages, page, kvHeads, d, d);
                    cache.append(0, Tensor.randomNormal(arena, 1, 1f, 1, kvHeads, length, d), Tensor.randomNormal(arena, 2, 1f, 1, kvHeads, length, d));
                    Tensor k1 = Tensor.randomNormal(arena, 3, 1f, 1, kvHeads, 1, d), v1 = Tensor.randomNormal(arena, 4, 1f, 1, kvHeads, 1, d);
                    Tensor q = Tensor.randomNormal(arena, 5, 1f, 1, heads, 1, d), out = Tensor.zeros(arena, 1, heads, 1, d);
                    PagedAttention decode = PagedAttention.dense().on(device ? tornado : new PerPage(tornado));
                    long first = 0, best = Long.MAX_VALUE;
                    DeviceRun run = null;
                    for (int s = 0; s <= n; s++) {
                        cache.append(0, k1, v1);
                        long t0 = System.nanoTime();
                        decode.forward(cache, 0, q, out, null);
                        long t = System.nanoTime() - t0;
                        run = TornadoBackend.lastRun();
                        if (s == 0) first = t; else best = Math.min(best, t);
                    }
                    System.out.printf("TIMING length=%d %s pageSize=%d: first step %.1f ms, min of %d later steps %.2f ms; last step: %s%n",
                            length, device ? "device-decode " + type : "per-page-fallback", page, first / 1e6, n, best / 1e6, run);
                }
            }
        }
    }
}
