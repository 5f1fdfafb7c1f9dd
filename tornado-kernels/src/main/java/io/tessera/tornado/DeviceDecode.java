package io.tessera.tornado;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;
import io.tessera.tensor.ElementType;
import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import io.tessera.pattern.DecodePlan;
import io.tessera.pattern.ScoreMod;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.TornadoExecutionResult;
import uk.ac.manchester.tornado.api.TornadoProfilerResult;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;
import uk.ac.manchester.tornado.api.types.arrays.ShortArray;
import uk.ac.manchester.tornado.api.types.arrays.TornadoNativeArray;

/**
 * The host side of the device decode step ({@link DecodeKernel}): one execution plan per (device,
 * batch, heads, KV heads, qLen, dims, page size, pool storage), which keeps the key and value
 * pools on the device across steps and is reused at every live length.
 *
 * <p>Residency. The pools are sent whole on the plan's first execution (wrapped in place, no host
 * copy). After that the plan records, per pool page, the page's generation (the cache's write
 * record, {@code KvCache} hands a page out again or truncates tokens of it → new generation) and how many of its tokens the
 * device holds. Each step it walks the pages the call reaches: tokens past those held (or all of a
 * page whose generation changed) are copied into a staging buffer and scattered into the resident
 * pools by the plan's first task. The staging buffer holds exactly one step's worth of new tokens
 * (batch × qLen tokens × KV heads), so a decode step sends O(new tokens) of keys and values; a
 * larger backlog takes several executions (decode off but the last), and one larger than
 * {@link #REPLAN_BACKLOG} staging buffers rebuilds the plan (whose first execution sends the pools
 * whole). Without a write record ({@code pageGenerations == null}) every reached token is sent on
 * every step.
 */
final class DeviceDecode {
    private DeviceDecode() {}

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int CAPACITY = 4, REPLAN_BACKLOG = 64, SCATTER_GROUP = 8, MERGE_GROUP = 64;
    /** Work-groups per compute unit the split count aims at (enough to balance uneven groups), and the most splits. */
    private static final int GROUPS_PER_COMPUTE_UNIT = 8, MAX_SPLITS = 64;
    private static final AtomicLong GRAPH_IDS = new AtomicLong();

    private record Key(Object device, int batch, int heads, int kvHeads, int qLen, int d, int dv, int pageSize, int poolTokens,
                       MemorySegment keyStorage, MemorySegment valueStorage, long keyOffset, long valueOffset, List<Integer> modKinds,
                       ElementType poolType) {}

    private static final Map<Key, Plan> PLANS = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Key, Plan> eldest) {
            if (size() <= CAPACITY) return false;
            eldest.getValue().close();
            return true;
        }
    };

    /** Identity of the device object for the key (TornadoDevice has no value equality we rely on). */
    private record Same(Object o) {
        @Override public boolean equals(Object other) { return other instanceof Same s && s.o == o; }
        @Override public int hashCode() { return System.identityHashCode(o); }
    }

    private static final class Plan {
        final Key key;
        final String device;
        final TornadoExecutionPlan plan;
        final FloatArray q, out, lse, scale, partO, partML, modValues;
        final TornadoNativeArray stagedKeys, stagedValues;   // FloatArray, or ShortArray for a half-precision pool
        final IntArray stagedRows, meta, mods;
        final int stageRows, tileCapacity, maskCapacity, splits;
        final long[] residentGeneration;   // per pool page; −1: nothing held
        final int[] residentTokens;
        long executions;

        Plan(Key key, TornadoDevice device, Tensor keyPool, Tensor valuePool, int tileCapacity, int modCapacity) {
            this.key = key;
            this.device = device.getPhysicalDevice().getDeviceName();
            int rows = Math.multiplyExact(Math.multiplyExact(key.batch, key.heads), key.qLen);
            this.splits = splits(device, key.batch, key.kvHeads, tileCapacity, (long) rows * Math.max(2, key.dv));
            int groups = Math.multiplyExact(Math.multiplyExact(key.batch, key.kvHeads), splits);
            int partRows = Math.multiplyExact(Math.multiplyExact(groups, key.heads / key.kvHeads), key.qLen);
            this.stageRows = Math.multiplyExact(Math.multiplyExact(key.batch, key.qLen), key.kvHeads);
            this.tileCapacity = tileCapacity;
            int words = (key.pageSize + 31) / 32;
            this.maskCapacity = Math.max(1, Math.multiplyExact(Math.multiplyExact(tileCapacity, key.qLen), words));
            q = new FloatArray(Math.multiplyExact(rows, key.d));
            out = new FloatArray(Math.multiplyExact(rows, key.dv));
            lse = new FloatArray(rows);
            boolean half = key.poolType != ElementType.F32;
            stagedKeys = half ? new ShortArray(Math.multiplyExact(stageRows, key.d)) : new FloatArray(Math.multiplyExact(stageRows, key.d));
            stagedValues = half ? new ShortArray(Math.multiplyExact(stageRows, key.dv)) : new FloatArray(Math.multiplyExact(stageRows, key.dv));
            stagedRows = new IntArray(stageRows);
            meta = new IntArray(Math.addExact(DecodeKernel.masks(key.batch, tileCapacity), maskCapacity));
            scale = new FloatArray(2);
            partO = new FloatArray(Math.multiplyExact(partRows, key.dv));
            partML = new FloatArray(Math.multiplyExact(partRows, 2));
            int steps = key.modKinds.size();
            mods = new IntArray(DecodeKernel.modAt(steps, key.batch, 0));
            modValues = new FloatArray(Math.max(1, modCapacity));
            mods.set(DecodeKernel.MOD_STEPS, steps);
            for (int st = 0; st < steps; st++) mods.set(DecodeKernel.MOD_KINDS + st, DeviceMods.deviceKind(key.modKinds.get(st)));
            int pages = key.poolTokens / key.pageSize;
            residentGeneration = new long[pages];
            Arrays.fill(residentGeneration, -1);
            residentTokens = new int[pages];
            String graph = "tesseraDecode" + GRAPH_IDS.incrementAndGet();
            TaskGraph tg = new TaskGraph(graph);
            boolean shared = key.valueStorage.equals(key.keyStorage);
            if (half) {
                // The pools stay 16-bit on the device; the kernel widens each element exactly through the table.
                ShortArray keys = ShortArray.fromSegmentShallow(keyPool.storageWithHeader());
                ShortArray values = shared ? keys : ShortArray.fromSegmentShallow(valuePool.storageWithHeader());
                FloatArray widen = widenTable(key.poolType);
                ShortArray sk = (ShortArray) stagedKeys, sv = (ShortArray) stagedValues;
                tg = tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, shared ? new Object[] {keys, widen} : new Object[] {keys, values, widen})
                        .transferToDevice(DataTransferMode.FIRST_EXECUTION, partO, partML)
                        .transferToDevice(DataTransferMode.EVERY_EXECUTION, q, sk, sv, stagedRows, meta, scale, mods, modValues)
                        .task("scatter", DecodeKernel::scatterHalf, new KernelContext(), keys, values, sk, sv, stagedRows, meta)
                        .task("decode", DecodeKernel::decodeHalf, new KernelContext(), q, keys, values, widen, partO, partML, meta, scale, mods, modValues);
            } else {
                FloatArray keys = FloatArray.fromSegmentShallow(keyPool.storageWithHeader());
                FloatArray values = shared ? keys : FloatArray.fromSegmentShallow(valuePool.storageWithHeader());
                FloatArray sk = (FloatArray) stagedKeys, sv = (FloatArray) stagedValues;
                tg = tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, shared ? new Object[] {keys} : new Object[] {keys, values})
                        // The partials never leave the device: sent once so that TornadoVM allocates them there.
                        .transferToDevice(DataTransferMode.FIRST_EXECUTION, partO, partML)
                        .transferToDevice(DataTransferMode.EVERY_EXECUTION, q, sk, sv, stagedRows, meta, scale, mods, modValues)
                        .task("scatter", DecodeKernel::scatter, new KernelContext(), keys, values, sk, sv, stagedRows, meta)
                        .task("decode", DecodeKernel::decode, new KernelContext(), q, keys, values, partO, partML, meta, scale, mods, modValues);
            }
            tg = tg.task("merge", DecodeKernel::merge, new KernelContext(), partO, partML, out, lse, meta)
                    .transferToHost(DataTransferMode.EVERY_EXECUTION, out, lse);
            WorkerGrid1D scatterGrid = new WorkerGrid1D(roundUp(stageRows, SCATTER_GROUP));
            scatterGrid.setLocalWork(SCATTER_GROUP, 1, 1);
            WorkerGrid1D decodeGrid = new WorkerGrid1D(Math.multiplyExact(groups, DecodeKernel.GROUP_SIZE));
            decodeGrid.setLocalWork(DecodeKernel.GROUP_SIZE, 1, 1);
            WorkerGrid1D mergeGrid = new WorkerGrid1D(roundUp(Math.multiplyExact(rows, key.dv), MERGE_GROUP));
            mergeGrid.setLocalWork(MERGE_GROUP, 1, 1);
            GridScheduler scheduler = new GridScheduler();
            scheduler.addWorkerGrid(graph + ".scatter", scatterGrid);
            scheduler.addWorkerGrid(graph + ".decode", decodeGrid);
            scheduler.addWorkerGrid(graph + ".merge", mergeGrid);
            // -Dtessera.tornado.profile=true prints TornadoVM's profile of every execution (per task: scatter, decode, merge).
            ProfilerMode profiler = Boolean.getBoolean("tessera.tornado.profile") ? ProfilerMode.CONSOLE : ProfilerMode.SILENT;
            plan = new TornadoExecutionPlan(tg.snapshot()).withDevice(device).withGridScheduler(scheduler).withProfiler(profiler);
        }

        boolean alive() { return key.keyStorage.scope().isAlive() && key.valueStorage.scope().isAlive(); }

        /** The float32 value of every 16-bit pattern of {@code type} (exact: widening loses nothing). */
        private static FloatArray widenTable(ElementType type) {
            FloatArray table = new FloatArray(1 << 16);
            MemorySegment bits = MemorySegment.ofArray(new short[1]);
            for (int i = 0; i < 1 << 16; i++) {
                bits.set(ValueLayout.JAVA_SHORT, 0, (short) i);
                table.set(i, type.get(bits, 0));
            }
            return table;
        }

        void close() {
            try {
                plan.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing a TornadoVM execution plan failed", e);
            }
        }
    }

    /**
     * Validates the call (see {@code PagedAttentionDevice}), then runs it on the device and records
     * the run. {@code plan}: the decode plan {@code layouts} were made from (its score modifier, if
     * any, runs on the device; a user function is rejected by name before anything runs).
     */
    static DeviceRun run(TornadoDevice device, Tensor q, Tensor keyPool, Tensor valuePool, DecodePlan plan, int[][] pageTables, BlockLayout[] layouts,
                         long[] pageGenerations, float scale, Tensor out, Tensor lse) {
        int pageSize = plan.pageSize();
        Check c = Check.of(q, keyPool, valuePool, pageSize, pageTables, layouts, pageGenerations, scale, out, lse);
        List<Integer> modKinds = modKinds(plan, c);
        long modValues = modValues(plan, c);
        Key key = new Key(new Same(device), c.batch, c.heads, c.kvHeads, c.qLen, c.d, c.dv, pageSize, c.poolTokens,
                keyPool.storageWithHeader(), valuePool.storageWithHeader(), keyPool.offset(), valuePool.offset(), modKinds, keyPool.type());
        int tiles = 0;
        for (BlockLayout lay : layouts) tiles = Math.addExact(tiles, lay.tileCount());
        int tileCapacity = Math.max(tiles, c.poolTokens / pageSize);
        int modCapacity = (int) Math.max(modValues, modCapacity(plan, c));
        synchronized (PLANS) {
            Plan p = PLANS.get(key);
            if (p != null && (!p.alive() || p.tileCapacity < tiles || p.modValues.getSize() < modValues)) {
                PLANS.remove(key);
                p.close();
                p = null;
            }
            if (p == null) {
                p = new Plan(key, device, keyPool, valuePool, tileCapacity, modCapacity);
                PLANS.put(key, p);
            }
            try {
                try {
                    return step(p, c, q, keyPool, valuePool, plan, pageTables, layouts, pageGenerations, scale, out, lse);
                } catch (Backlog backlog) {
                    // Cheaper to send the pools whole: a new plan does on its first execution.
                    PLANS.remove(key);
                    p.close();
                    p = new Plan(key, device, keyPool, valuePool, tileCapacity, modCapacity);
                    PLANS.put(key, p);
                    return step(p, c, q, keyPool, valuePool, plan, pageTables, layouts, pageGenerations, scale, out, lse);
                }
            } catch (RuntimeException | Error e) {
                // What the device holds is unknown after a failed execution: start over next time.
                PLANS.remove(key);
                p.close();
                throw e;
            }
        }
    }

    /** The kinds of the plan's modifier steps (empty: none); a user function is rejected here, naming it. */
    private static List<Integer> modKinds(DecodePlan plan, Check c) {
        if (plan.scoreMod() == null) return List.of();
        if (plan.heads() != c.heads) throw new IllegalArgumentException("plan.heads()=" + plan.heads() + " but q has " + c.heads + " heads");
        ScoreMod.Plan mp = plan.scoreModPlan(0);
        List<Integer> kinds = new ArrayList<>(mp.steps());
        for (int st = 0; st < mp.steps(); st++) {
            DeviceMods.length(mp, st, c.heads, 1, 1);   // throws for a user function, naming it
            kinds.add(mp.kind(st));
        }
        return List.copyOf(kinds);
    }

    /** Values this step's modifier sends: per sequence, its plan's values at its live length. */
    private static long modValues(DecodePlan plan, Check c) {
        if (plan.scoreMod() == null) return 1;
        long total = 0;
        for (int b = 0; b < c.batch; b++) {
            ScoreMod.Plan mp = plan.scoreModPlan(b);
            int length = plan.length(b);
            for (int st = 0; st < mp.steps(); st++) total += DeviceMods.length(mp, st, c.heads, (long) c.qLen + length - 1, length);
        }
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("score modifier " + plan.scoreMod() + " needs " + total + " values on the device in one decode step, more than int indexing allows");
        }
        return Math.max(1, total);
    }

    /**
     * Room for the modifier's values at any later step: length-sized tables (relative-position,
     * per-key biases) as if the sequences' lengths added up to the whole pool (they do at most when
     * they hold distinct pages, as a KvCache's do); a step that needs more rebuilds the plan.
     */
    private static long modCapacity(DecodePlan plan, Check c) {
        if (plan.scoreMod() == null) return 1;
        ScoreMod.Plan mp = plan.scoreModPlan(0);
        long total = 0;
        for (int st = 0; st < mp.steps(); st++) {
            total += switch (mp.kind(st)) {
                case ScoreMod.Plan.DISTANCE -> (long) c.heads * ((long) c.batch * c.qLen + c.poolTokens);
                case ScoreMod.Plan.KEY -> (long) c.heads * c.poolTokens;
                default -> (long) c.batch * DeviceMods.length(mp, st, c.heads, 1, 1);
            };
        }
        return Math.min(total, Integer.MAX_VALUE - 8);
    }

    /** The split count of a plan: enough work-groups to keep the device's compute units busy, each split at least one page. */
    private static int splits(TornadoDevice device, int batch, int kvHeads, int tileCapacity, long partialsPerSplit) {
        int units = Math.max(1, device.getPhysicalDevice().getDeviceMaxComputeUnits());
        long perSplit = (long) batch * kvHeads;
        long wanted = ((long) units * GROUPS_PER_COMPUTE_UNIT + perSplit - 1) / perSplit;
        // The kernel cuts a sequence's pages with tileCount·(split + 1) in int, and indexes the partials with int.
        long most = Math.min(MAX_SPLITS, Math.min(tileCapacity, Integer.MAX_VALUE / Math.max(1, tileCapacity)));
        most = Math.min(most, Integer.MAX_VALUE / partialsPerSplit);
        return (int) Math.max(1, Math.min(wanted, most));
    }

    private static DeviceRun step(Plan p, Check c, Tensor q, Tensor keyPool, Tensor valuePool, DecodePlan plan, int[][] pageTables, BlockLayout[] layouts,
                                  long[] generations, float scale, Tensor out, Tensor lse) {
        int hostCopies = 0;
        // q → the plan's contiguous [B, H, qLen, D] buffer.
        MemorySegment qs = q.segment(), qa = p.q.getSegment();
        long rowBytes = (long) c.d * Float.BYTES;
        int r = 0;
        for (int b = 0; b < c.batch; b++) {
            for (int h = 0; h < c.heads; h++) {
                for (int i = 0; i < c.qLen; i++, r++) {
                    long at = q.offset() + b * q.stride(0) + h * q.stride(1) + i * q.stride(2);
                    if (q.type() == ElementType.F32) {
                        MemorySegment.copy(qs, at * Float.BYTES, qa, r * rowBytes, rowBytes);
                    } else {
                        for (int x = 0; x < c.d; x++) p.q.set(r * c.d + x, q.type().get(qs, at + x));   // widened exactly
                    }
                }
            }
        }
        hostCopies++;
        p.scale.set(0, scale);
        p.scale.set(1, scale * DeviceMods.LOG2E);   // the base-2 scale, rounded once as the CPU kernels round theirs
        if (!p.key.modKinds.isEmpty()) {
            int steps = p.key.modKinds.size(), at = 0;
            for (int b = 0; b < c.batch; b++) {
                ScoreMod.Plan mp = plan.scoreModPlan(b);
                int length = plan.length(b);
                for (int st = 0; st < steps; st++) {
                    if (mp.kind(st) != p.key.modKinds.get(st)) throw new IllegalStateException("sequence " + b + "'s modifier plan differs from sequence 0's");
                    p.mods.set(DecodeKernel.modAt(steps, b, st), at);
                    DeviceMods.write(mp, st, c.heads, c.qLen + length - 1, length, p.modValues, at);
                    at += (int) DeviceMods.length(mp, st, c.heads, (long) c.qLen + length - 1, length);
                }
            }
        }
        IntArray meta = p.meta;
        meta.set(DecodeKernel.BATCH, c.batch);
        meta.set(DecodeKernel.HEADS, c.heads);
        meta.set(DecodeKernel.GROUP, c.heads / c.kvHeads);
        meta.set(DecodeKernel.Q_LEN, c.qLen);
        meta.set(DecodeKernel.HEAD_DIM, c.d);
        meta.set(DecodeKernel.VALUE_DIM, c.dv);
        meta.set(DecodeKernel.POOL_TOKENS, c.poolTokens);
        meta.set(DecodeKernel.PAGE_SIZE, p.key.pageSize);
        int words = (p.key.pageSize + 31) / 32;
        meta.set(DecodeKernel.MASK_WORDS, words);
        meta.set(DecodeKernel.HAS_LSE, lse != null ? 1 : 0);
        meta.set(DecodeKernel.TILE_CAPACITY, p.tileCapacity);
        meta.set(DecodeKernel.KEY_OFF, (int) keyPool.offset());
        meta.set(DecodeKernel.VALUE_OFF, (int) valuePool.offset());
        meta.set(DecodeKernel.KV_HEADS, c.kvHeads);
        meta.set(DecodeKernel.SPLITS, p.splits);
        // The pages each sequence reaches, their masks, and what of them the device lacks.
        int tileBase = DecodeKernel.tiles(c.batch), maskBase = DecodeKernel.masks(c.batch, p.tileCapacity);
        int pageSize = p.key.pageSize;
        int t = 0, maskWord = 0;
        long[] mask = null;
        boolean fresh = p.executions == 0;
        PendingRows pending = new PendingRows();
        for (int b = 0; b < c.batch; b++) {
            BlockLayout lay = layouts[b];
            int length = lay.kvLen();
            meta.set(DecodeKernel.seqStart(b), t);
            meta.set(DecodeKernel.lengthOf(c.batch, b), length);
            int[] cols = lay.colIndices();
            for (int tile = lay.rowOffsets()[0]; tile < lay.rowOffsets()[1]; tile++, t++) {
                int logical = cols[tile], page = pageTables[b][logical];
                meta.set(tileBase + 3 * t, page);
                meta.set(tileBase + 3 * t + 1, logical);
                if (lay.kind(tile) == TileKind.FULL) {
                    meta.set(tileBase + 3 * t + 2, -1);
                } else {
                    if (mask == null) mask = new long[c.qLen * ((pageSize + 63) / 64)];
                    lay.fillTileMask(tile, mask);
                    meta.set(tileBase + 3 * t + 2, maskWord);
                    int longs = lay.maskWordsPerRow();
                    for (int i = 0; i < c.qLen; i++) {
                        for (int w = 0; w < words; w++) {
                            long bits = (w >> 1) < longs ? mask[i * longs + (w >> 1)] : 0L;
                            meta.set(maskBase + maskWord++, (int) ((w & 1) == 0 ? bits : bits >>> 32));
                        }
                    }
                }
                int tokens = Math.min(pageSize, length - logical * pageSize);
                long generation = generations == null ? -2 : generations[page];
                int held = !fresh && generations != null && p.residentGeneration[page] == generation ? p.residentTokens[page] : 0;
                if (fresh) held = tokens;   // the first execution sends the pools whole
                if (held < tokens) pending.add(page, held, tokens);
                if (generations != null && (p.residentGeneration[page] != generation || p.residentTokens[page] < tokens)) {
                    p.residentGeneration[page] = generation;
                    p.residentTokens[page] = tokens;
                }
            }
        }
        meta.set(DecodeKernel.seqStart(c.batch), t);
        long backlog = pending.tokens * c.kvHeads;
        if (backlog > (long) REPLAN_BACKLOG * p.stageRows) {
            throw new Backlog();
        }
        // Stage the missing rows, a buffer at a time; the last execution decodes.
        long bytesIn = 0, bytesOut = 0, kernelNanos = 0;
        int executions = 0;
        boolean first = fresh;
        int run = 0, from = pending.count > 0 ? pending.from[0] : 0, hk = 0;
        do {
            int n = 0;
            MemorySegment kSrc = keyPool.segment(), vSrc = valuePool.segment();
            MemorySegment kDst = p.stagedKeys.getSegment(), vDst = p.stagedValues.getSegment();
            int bytes = keyPool.type().byteSize();
            while (run < pending.count && n < p.stageRows) {
                int page = pending.page[run];
                int rowIndex = hk * c.poolTokens + page * pageSize + from;
                long kAt = keyPool.offset() + (long) rowIndex * c.d, vAt = valuePool.offset() + (long) rowIndex * c.dv;
                MemorySegment.copy(kSrc, kAt * bytes, kDst, (long) n * c.d * bytes, (long) c.d * bytes);
                MemorySegment.copy(vSrc, vAt * bytes, vDst, (long) n * c.dv * bytes, (long) c.dv * bytes);
                p.stagedRows.set(n++, rowIndex);
                hostCopies++;
                if (++hk == c.kvHeads) {
                    hk = 0;
                    if (++from == pending.to[run]) {
                        run++;
                        if (run < pending.count) from = pending.from[run];
                    }
                }
            }
            boolean last = run >= pending.count;
            meta.set(DecodeKernel.STAGED, n);
            meta.set(DecodeKernel.RUN_DECODE, last ? 1 : 0);
            TornadoExecutionResult result = p.plan.execute();
            p.executions++;
            executions++;
            TornadoProfilerResult prof = result.getProfilerResult();
            bytesIn += prof.getTotalBytesCopyIn();
            bytesOut += prof.getTotalBytesCopyOut();
            kernelNanos += prof.getDeviceKernelTime();
            if (last) break;
        } while (true);
        // out and lse back to the caller's tensors.
        MemorySegment oa = p.out.getSegment(), os = out.segment();
        long outRowBytes = (long) c.dv * Float.BYTES;
        r = 0;
        for (int b = 0; b < c.batch; b++) {
            for (int h = 0; h < c.heads; h++) {
                for (int i = 0; i < c.qLen; i++, r++) {
                    long at = out.offset() + b * out.stride(0) + h * out.stride(1) + i * out.stride(2);
                    MemorySegment.copy(oa, r * outRowBytes, os, at * Float.BYTES, outRowBytes);
                    if (lse != null) {
                        long l = lse.offset() + b * lse.stride(0) + h * lse.stride(1) + i * lse.stride(2);
                        lse.segment().setAtIndex(FLOAT, l, p.lse.get(r));
                    }
                }
            }
        }
        hostCopies += lse != null ? 2 : 1;
        return new DeviceRun("decode", p.device, kernelNanos, bytesIn, bytesOut, hostCopies, first, executions, backlog);
    }

    /** Thrown by {@link #step} before any execution when the backlog is better sent as a whole pool by a new plan. */
    static final class Backlog extends RuntimeException {
        Backlog() { super("backlog of rows to upload exceeds the staging budget; the plan is rebuilt", null, false, false); }
    }

    /** Runs of tokens [from, to) of pool pages the device lacks. */
    private static final class PendingRows {
        int[] page = new int[8], from = new int[8], to = new int[8];
        int count;
        long tokens;

        void add(int p, int f, int t) {
            if (count == page.length) {
                page = Arrays.copyOf(page, 2 * count);
                from = Arrays.copyOf(from, 2 * count);
                to = Arrays.copyOf(to, 2 * count);
            }
            page[count] = p;
            from[count] = f;
            to[count] = t;
            count++;
            tokens += t - f;
        }
    }

    private static int roundUp(int x, int multiple) { return Math.toIntExact(((long) x + multiple - 1) / multiple * multiple); }

    /** The call's sizes, every argument checked up front and named in the message. */
    private record Check(int batch, int heads, int kvHeads, int qLen, int d, int dv, int poolTokens) {
        static Check of(Tensor q, Tensor keyPool, Tensor valuePool, int pageSize, int[][] pageTables, BlockLayout[] layouts,
                        long[] pageGenerations, float scale, Tensor out, Tensor lse) {
            if (q == null) throw new NullPointerException("q");
            if (keyPool == null) throw new NullPointerException("keyPool");
            if (valuePool == null) throw new NullPointerException("valuePool");
            if (pageTables == null) throw new NullPointerException("pageTables");
            if (layouts == null) throw new NullPointerException("layouts");
            if (out == null) throw new NullPointerException("out");
            if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
            if (pageSize < 1) throw new IllegalArgumentException("pageSize must be >= 1, got " + pageSize);
            for (Tensor t : new Tensor[] {q, keyPool, valuePool, out, lse}) {
                if (t == null) continue;
                String name = name(t, q, keyPool, valuePool, out);
                if ((t == out || t == lse) && t.type() != ElementType.F32) {
                    throw new IllegalArgumentException(name + " has element type " + t.type() + " but backend 'tornado' writes F32 outputs"
                            + " (the cache and the queries may be F16 or BF16): convert it with " + name + ".to(arena, ElementType.F32)");
                }
                if (t.rank() != (t == lse ? 3 : 4)) throw new IllegalArgumentException(name + " must have rank " + (t == lse ? 3 : 4) + ", got " + Arrays.toString(t.shape()));
                if (!t.hasUnitInnerStride()) throw new IllegalArgumentException(name + " must have a unit-stride last dimension, got " + t);
            }
            if (valuePool.type() != keyPool.type()) {
                throw new IllegalArgumentException("keyPool has element type " + keyPool.type() + " but valuePool has " + valuePool.type() + ": one cache, one type");
            }
            long batch = q.size(0), heads = q.size(1), qLen = q.size(2), d = q.size(3);
            long kvHeads = keyPool.size(1), poolTokens = keyPool.size(2), dv = valuePool.size(3);
            if (d > DecodeKernel.MAX_HEAD_DIM || dv > DecodeKernel.MAX_HEAD_DIM) {
                throw new IllegalArgumentException("the tornado decode kernel supports head dims up to " + DecodeKernel.MAX_HEAD_DIM
                        + " (its local memory is sized at compile time), got headDim=" + d + ", valueDim=" + dv);
            }
            if (batch < 1 || heads < 1 || qLen < 1 || d < 1) throw new IllegalArgumentException("q must be [B, H, qLen, D] with every size >= 1, got " + Arrays.toString(q.shape()));
            if (keyPool.size(0) != 1 || kvHeads < 1 || heads % kvHeads != 0 || keyPool.size(3) != d || poolTokens < 1) {
                throw new IllegalArgumentException("keyPool must be [1, kvHeads (dividing H=" + heads + "), tokens, D=" + d + "], got " + Arrays.toString(keyPool.shape()));
            }
            if (valuePool.size(0) != 1 || valuePool.size(1) != kvHeads || valuePool.size(2) != poolTokens || dv < 1) {
                throw new IllegalArgumentException("valuePool must be [1, " + kvHeads + ", " + poolTokens + ", Dv], got " + Arrays.toString(valuePool.shape()));
            }
            for (Tensor pool : new Tensor[] {keyPool, valuePool}) {
                String name = pool == keyPool ? "keyPool" : "valuePool";
                if (!pool.isContiguous()) throw new IllegalArgumentException(name + " must be contiguous (a KvCache's pool is), got " + pool);
                if (!pool.hasHeaderSlot()) {
                    throw new IllegalStateException(name + " has no header slot (it wraps foreign memory): the device keeps the pool resident by wrapping it in place;"
                            + " copy it first with contiguous(arena)");
                }
                long storage = (pool.storageWithHeader().byteSize() - Tensor.HEADER_BYTES) / pool.type().byteSize();
                if (storage > Integer.MAX_VALUE) throw new IllegalArgumentException(name + " lives in a storage of " + storage + " elements; TornadoVM arrays index with int");
            }
            if (poolTokens % pageSize != 0) throw new IllegalArgumentException("pool of " + poolTokens + " tokens is not a whole number of pages of pageSize=" + pageSize);
            long pages = poolTokens / pageSize;
            long rows = batch * heads * qLen;
            if (rows * Math.max(d, dv) > Integer.MAX_VALUE || batch * qLen * kvHeads * Math.max(d, dv) > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("decode call of " + rows + " query rows exceeds int indexing on the device");
            }
            if (!Arrays.equals(out.shape(), new long[] {batch, heads, qLen, dv})) {
                throw new IllegalArgumentException("out shape " + Arrays.toString(out.shape()) + " must be " + Arrays.toString(new long[] {batch, heads, qLen, dv}));
            }
            if (lse != null && !Arrays.equals(lse.shape(), new long[] {batch, heads, qLen})) {
                throw new IllegalArgumentException("lse shape " + Arrays.toString(lse.shape()) + " must be " + Arrays.toString(new long[] {batch, heads, qLen}));
            }
            for (Tensor read : new Tensor[] {q, keyPool, valuePool}) {
                String name = name(read, q, keyPool, valuePool, out);
                if (out.overlaps(read)) throw new IllegalArgumentException("out shares memory with " + name);
                if (lse != null && lse.overlaps(read)) throw new IllegalArgumentException("lse shares memory with " + name);
            }
            if (lse != null && out.overlaps(lse)) throw new IllegalArgumentException("out and lse share memory");
            if (pageTables.length != batch) throw new IllegalArgumentException("pageTables.length=" + pageTables.length + " must be the batch size " + batch);
            if (layouts.length != batch) throw new IllegalArgumentException("layouts.length=" + layouts.length + " must be the batch size " + batch);
            if (pageGenerations != null && pageGenerations.length != pages) {
                throw new IllegalArgumentException("pageGenerations.length=" + pageGenerations.length + " must be the pool's page count " + pages);
            }
            for (int b = 0; b < batch; b++) {
                BlockLayout lay = layouts[b];
                if (lay == null) throw new NullPointerException("layouts[" + b + "]");
                if (lay.qLen() != qLen || lay.qBlocks() != 1 || lay.blockKV() != pageSize) {
                    throw new IllegalArgumentException("layouts[" + b + "] must have qLen=" + qLen + " in one query block and key blocks of pageSize=" + pageSize + ", got " + lay);
                }
                int[] table = pageTables[b];
                if (table == null) throw new NullPointerException("pageTables[" + b + "]");
                int used = lay.kvBlocks();
                if (table.length < used) throw new IllegalArgumentException("pageTables[" + b + "] has " + table.length + " pages but layouts[" + b + "] spans " + lay.kvLen() + " tokens = " + used + " pages");
                for (int p = 0; p < used; p++) {
                    if (table[p] < 0 || table[p] >= pages) throw new IllegalArgumentException("pageTables[" + b + "][" + p + "]=" + table[p] + " is not a page of the pool [0, " + pages + ")");
                }
            }
            return new Check((int) batch, (int) heads, (int) kvHeads, (int) qLen, (int) d, (int) dv, (int) poolTokens);
        }

        private static String name(Tensor t, Tensor q, Tensor keyPool, Tensor valuePool, Tensor out) {
            return t == q ? "q" : t == keyPool ? "keyPool" : t == valuePool ? "valuePool" : t == out ? "out" : "lse";
        }
    }
}
