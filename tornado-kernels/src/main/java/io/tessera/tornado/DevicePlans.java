package io.tessera.tornado;

import io.tessera.backend.AttentionGeometry;
import io.tessera.backend.GradientGeometry;
import io.tessera.cpu.GemmCall;
import io.tessera.layout.HeadLayouts;
import io.tessera.layout.CsrMatrix;
import io.tessera.pattern.ScoreMod;
import io.tessera.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.TornadoExecutionResult;
import uk.ac.manchester.tornado.api.TornadoProfilerResult;
import uk.ac.manchester.tornado.api.WorkerGrid;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.WorkerGrid2D;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.IntArray;

/**
 * Execution plans, built once per (kernel, device, shapes and strides, layouts, tensor storage) and
 * kept in a small LRU cache: TornadoVM compiles a task graph's kernels on the plan's first
 * execution, and arrays sent {@code FIRST_EXECUTION} (layouts, scale, pinned weights) stay on the
 * device after that. Element offsets are not part of the key: they travel in the small {@code params} array sent
 * on every execution, so calls on different views of the same storage (Linformer's per-head
 * projections, say) share one plan.
 *
 * <p>A plan holds the tensors' storage wrapped as TornadoVM arrays, so it is only reused while
 * that storage is alive: a new tensor that happens to reuse a freed address gets a new plan.
 */
final class DevicePlans {
    private DevicePlans() {}

    private static final int CAPACITY = 8;
    private static final AtomicLong GRAPH_IDS = new AtomicLong();
    private static final ThreadLocal<DeviceRun> LAST = new ThreadLocal<>();

    private static final Map<Object, Plan> PLANS = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Object, Plan> eldest) {
            if (size() <= CAPACITY) return false;
            eldest.getValue().close();
            return true;
        }
    };

    /** A built plan and the storage it wraps. */
    private static final class Plan {
        final String kernel, device;
        final TornadoExecutionPlan plan;
        final List<MemorySegment> storage;
        final IntArray params;
        final List<Staged> staged;
        DeviceMods mods;   // the plan's modifier arrays (attention only), refilled per call
        DeviceTableGradients tables;   // the plan's learnable-table arrays (backward only), refilled per call
        long executions;

        Plan(String kernel, String device, TornadoExecutionPlan plan, List<MemorySegment> storage, IntArray params, Wrapping arrays) {
            this.kernel = kernel;
            this.device = device;
            this.plan = plan;
            this.storage = storage;
            this.params = params;
            this.staged = List.copyOf(arrays.staged);
        }

        Plan withMods(DeviceMods planMods) {
            this.mods = planMods;
            return this;
        }

        boolean alive() {
            for (MemorySegment s : storage) if (!s.scope().isAlive()) return false;
            return true;
        }

        /**
         * Runs with this call's parameters (same shape as the plan's, offsets may differ). Staged
         * tensors are copied into their TornadoVM arrays first and the written ones back after; each
         * copy is counted in the run's {@code hostCopies}.
         */
        synchronized DeviceRun execute(IntArray callParams) { return execute(callParams, null); }

        synchronized DeviceRun execute(IntArray callParams, DeviceMods callMods) { return execute(callParams, callMods, null); }

        synchronized DeviceRun execute(IntArray callParams, DeviceMods callMods, DeviceTableGradients callTables) {
            for (int i = 0; i < params.getSize(); i++) params.set(i, callParams.get(i));
            if (callMods != null) mods.fillFrom(callMods);
            if (callTables != null) tables.fillFrom(callTables);
            int copies = 0;
            for (Staged s : staged) {
                MemorySegment.copy(s.source(), 0, s.array().getSegment(), 0, s.source().byteSize());
                copies++;
            }
            TornadoExecutionResult result = plan.execute();
            for (Staged s : staged) {
                if (!s.written()) continue;
                MemorySegment.copy(s.array().getSegment(), 0, s.source(), 0, s.source().byteSize());
                copies++;
            }
            TornadoProfilerResult p = result.getProfilerResult();
            return new DeviceRun(kernel, device, p.getDeviceKernelTime(), p.getTotalBytesCopyIn(), p.getTotalBytesCopyOut(), copies, executions++ == 0);
        }

        void close() {
            try {
                plan.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing a TornadoVM execution plan failed", e);
            }
        }
    }

    /** Compares by identity: layouts are immutable and cached by {@code Attention}, so identity is the cheap, exact key. */
    private record Same(Object o) {
        @Override public boolean equals(Object other) { return other instanceof Same s && s.o == o; }
        @Override public int hashCode() { return System.identityHashCode(o); }
    }

    private record AttentionKey(Same device, AttentionGeometry offsetFree, Same layouts, List<MemorySegment> storage, List<Long> pins, List<Integer> mods) {}

    private record BackwardKey(Same device, GradientGeometry offsetFree, Same layouts, List<MemorySegment> storage, List<Long> pins, List<Integer> mods,
                               List<Integer> tables) {}

    private record SparseKey(Same device, AttentionGeometry offsetFree, Same pattern, List<MemorySegment> storage, List<Long> pins) {}

    private record GemmKey(Same device, int m, int n, int k, long aRow, long aCol, long bRow, long bCol, long cRow,
                           float alpha, float beta, List<MemorySegment> storage, List<Long> pins) {}

    private static AttentionGeometry offsetFree(AttentionGeometry g) {
        return new AttentionGeometry(g.shape(), g.scale(), 0, g.qB(), g.qH(), g.qRow(), 0, g.kB(), g.kH(), g.kRow(),
                0, g.vB(), g.vH(), g.vRow(), 0, g.oB(), g.oH(), g.oRow(), 0, g.lB(), g.lH(), g.lRow());
    }

    /**
     * The record of the last call on this thread, if it completed on the device. Every call clears
     * the record before it does anything, so a call that failed or never reached the device is never
     * judged by an earlier call's record.
     */
    static DeviceRun lastRun() {
        DeviceRun r = LAST.get();
        if (r == null) throw new IllegalStateException("the last tornado call on this thread did not complete on the device (or none has run yet)");
        return r;
    }

    /** Records a completed call (the decode path keeps its own plans, {@link DeviceDecode}). */
    static void record(DeviceRun run) { LAST.set(run); }

    /** Forgets the previous call's record: the first thing every device call does. */
    static void startCall() { LAST.remove(); }

    /** {@code mods}: the call's score modifier at its sizes ({@code ScoreMod.plan}), or null for none. */
    static void attention(TornadoDevice device, AttentionGeometry g, Tensor q, Tensor k, Tensor v, HeadLayouts layouts, ScoreMod.Plan mods,
                          Tensor out, Tensor lse) {
        var s = g.shape();
        if (s.headDim() > AttentionKernel.MAX_HEAD_DIM || s.valueDim() > AttentionKernel.MAX_HEAD_DIM) {
            throw new IllegalArgumentException("the tornado attention kernel supports head dims up to " + AttentionKernel.MAX_HEAD_DIM
                    + " (its local memory is sized at compile time), got headDim=" + s.headDim() + ", valueDim=" + s.valueDim());
        }
        long workGroups = (long) s.batch() * s.heads() * layouts.first().qBlocks();
        int workGroup = Math.min(AttentionKernel.MAX_WORK_GROUP, layouts.first().blockQ());
        if (workGroups * workGroup > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("attention grid of " + workGroups + " work-groups × " + workGroup + " exceeds int indexing");
        }
        List<MemorySegment> storage = storageOf(q, k, v, out, lse);
        DeviceMods callMods = DeviceMods.of(mods, s.heads(), s.qLen(), s.kvLen());
        Object key = new AttentionKey(new Same(device), offsetFree(g), new Same(layouts), storage, pins(storage), callMods.shape());
        Plan plan = plan(key, () -> {
            Wrapping w = new Wrapping();
            AttentionArrays t = AttentionArrays.of(w, q, k, v, out, lse);
            DeviceMods planMods = callMods.copy();
            FloatArray qa = t.q(), ka = t.k(), va = t.v(), oa = t.out(), la = t.lse();
            DeviceLayout dl = DeviceLayout.of(layouts, s.heads());
            IntArray params = attentionParams(g, layouts, dl.maskWordsPerRow(), workGroup, lse != null);
            // The base-2 scale is rounded once, as the CPU kernels round theirs.
            FloatArray scale = FloatArray.fromElements(g.scale(), g.scale() * DeviceMods.LOG2E);
            String graph = "tesseraAttention" + GRAPH_IDS.incrementAndGet();
            TaskGraph tg = inputs(new TaskGraph(graph), List.of(q, k, v), List.of(qa, ka, va), out, oa, false, lse, la)
                    .transferToDevice(DataTransferMode.FIRST_EXECUTION, scale, dl.rowStart(), dl.cols(), dl.maskStart(), dl.maskBits())
                    .transferToDevice(DataTransferMode.EVERY_EXECUTION, params, planMods.steps(), planMods.values())
                    .task("kernel", AttentionKernel::attention, new KernelContext(), qa, ka, va, oa, la, params, scale,
                            dl.rowStart(), dl.cols(), dl.maskStart(), dl.maskBits(), planMods.steps(), planMods.values())
                    .transferToHost(DataTransferMode.EVERY_EXECUTION, distinct(oa, la));
            WorkerGrid grid = new WorkerGrid1D((int) (workGroups * workGroup));
            grid.setLocalWork(workGroup, 1, 1);
            return new Plan("attention", device.getPhysicalDevice().getDeviceName(), build(tg, graph, grid, device), storage, params, w)
                    .withMods(planMods);
        });
        LAST.set(plan.execute(attentionParams(g, layouts, DeviceLayout.maskWordsPerRow(layouts.first().blockKV()), workGroup, lse != null), callMods));
    }

    /**
     * The backward pass ({@link AttentionBackwardKernel}): the query-major dq kernel and the
     * key-major dk/dv kernel in one task graph, then the learnable tables' partial sums added on
     * the host into {@code dParameters} ({@code mods} null: no modifier).
     */
    static void backward(TornadoDevice device, GradientGeometry gg, Tensor q, Tensor k, Tensor v, HeadLayouts layouts, ScoreMod.Plan mods,
                         Tensor out, Tensor lse, Tensor dOut, Tensor dq, Tensor dk, Tensor dv, List<Tensor> dParameters) {
        AttentionGeometry g = gg.forward();
        var s = g.shape();
        if (s.headDim() > AttentionKernel.MAX_HEAD_DIM || s.valueDim() > AttentionKernel.MAX_HEAD_DIM) {
            throw new IllegalArgumentException("the tornado attention backward kernels support head dims up to " + AttentionKernel.MAX_HEAD_DIM
                    + " (their local memory is sized at compile time), got headDim=" + s.headDim() + ", valueDim=" + s.valueDim());
        }
        var first = layouts.first();
        long queryGroups = (long) s.batch() * s.heads() * first.qBlocks();
        long keyGroups = (long) s.batch() * s.kvHeads() * first.kvBlocks();
        int queryGroup = Math.min(AttentionKernel.MAX_WORK_GROUP, first.blockQ());
        int keyGroup = Math.min(AttentionKernel.MAX_WORK_GROUP, first.blockKV());
        if (queryGroups * queryGroup > Integer.MAX_VALUE || keyGroups * keyGroup > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("attention backward grids of " + queryGroups + " x " + queryGroup + " and " + keyGroups + " x " + keyGroup
                    + " work-items exceed int indexing");
        }
        List<MemorySegment> storage = storageOf(q, k, v, out, lse, dOut, dq, dk, dv);
        DeviceMods callMods = DeviceMods.of(mods, s.heads(), s.qLen(), s.kvLen());
        DeviceTableGradients callTables = DeviceTableGradients.of(mods, s.batch(), s.heads(), s.qLen(), s.kvLen(), first.kvBlocks());
        GradientGeometry offsetFree = new GradientGeometry(offsetFree(g), 0, gg.dOB(), gg.dOH(), gg.dORow(), 0, gg.dqB(), gg.dqH(), gg.dqRow(),
                0, gg.dkB(), gg.dkH(), gg.dkRow(), 0, gg.dvB(), gg.dvH(), gg.dvRow());
        Object key = new BackwardKey(new Same(device), offsetFree, new Same(layouts), storage, pins(storage), callMods.shape(), callTables.shape());
        IntArray callParams = backwardParams(gg, layouts, queryGroup, keyGroup, callTables.learned());
        Plan plan = plan(key, () -> {
            Wrapping w = new Wrapping();
            FloatArray qa = w.wrap(q, false), ka = w.wrap(k, false), va = w.wrap(v, false), oa = w.wrap(out, false), la = w.wrap(lse, false);
            FloatArray dOa = w.wrap(dOut, false), dqa = w.wrap(dq, true), dka = w.wrap(dk, true), dva = w.wrap(dv, true);
            DeviceMods planMods = callMods.copy();
            DeviceTableGradients planTables = callTables.copy();
            DeviceLayout dl = DeviceLayout.of(layouts, s.heads());
            DeviceColumns dc = DeviceColumns.of(layouts, s.heads(), dl);
            IntArray params = backwardParams(gg, layouts, queryGroup, keyGroup, callTables.learned());
            FloatArray scale = FloatArray.fromElements(g.scale(), g.scale() * DeviceMods.LOG2E);
            String graph = "tesseraAttentionBackward" + GRAPH_IDS.incrementAndGet();
            // Inputs: pinned ones once, the others on every execution. The gradients are written
            // row by row; one that does not cover its storage is sent first so that copying the
            // storage back does not overwrite the rest of it.
            List<Object> once = new ArrayList<>(), every = new ArrayList<>();
            Tensor[] inputs = {q, k, v, out, lse, dOut};
            FloatArray[] inputArrays = {qa, ka, va, oa, la, dOa};
            for (int i = 0; i < inputs.length; i++) {
                FloatArray a = inputArrays[i];
                if (once.contains(a) || every.contains(a)) continue;
                (pinGeneration(storage(inputs[i])) != 0 ? once : every).add(a);
            }
            Tensor[] gradients = {dq, dk, dv};
            FloatArray[] gradientArrays = {dqa, dka, dva};
            for (int i = 0; i < gradients.length; i++) {
                if (coversStorage(gradients[i]) || every.contains(gradientArrays[i])) continue;
                once.remove(gradientArrays[i]);
                every.add(gradientArrays[i]);
            }
            TaskGraph tg = new TaskGraph(graph);
            if (!once.isEmpty()) tg = tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, once.toArray());
            tg = tg.transferToDevice(DataTransferMode.EVERY_EXECUTION, every.toArray())
                    .transferToDevice(DataTransferMode.FIRST_EXECUTION, scale, dl.rowStart(), dl.cols(), dl.maskStart(), dl.maskBits(),
                            dc.colStart(), dc.colRows(), dc.colMask())
                    .transferToDevice(DataTransferMode.EVERY_EXECUTION, params, planMods.steps(), planMods.values(), planTables.learn(), planTables.bucketOf())
                    .task("queries", AttentionBackwardKernel::queryGradients, new KernelContext(), qa, ka, va, oa, la, dOa, dqa, params, scale,
                            dl.rowStart(), dl.cols(), dl.maskStart(), dl.maskBits(), planMods.steps(), planMods.values())
                    .task("keys", AttentionBackwardKernel::keyGradients, new KernelContext(), qa, ka, va, oa, la, dOa, dka, dva, params, scale,
                            dc.colStart(), dc.colRows(), dc.colMask(), dl.maskBits(), planMods.steps(), planMods.values(), planTables.learn(),
                            planTables.bucketOf(), planTables.partials())
                    .transferToHost(DataTransferMode.EVERY_EXECUTION, distinct(dqa, dka, dva, planTables.partials()));
            WorkerGrid queryGrid = new WorkerGrid1D((int) (queryGroups * queryGroup));
            queryGrid.setLocalWork(queryGroup, 1, 1);
            WorkerGrid keyGrid = new WorkerGrid1D((int) (keyGroups * keyGroup));
            keyGrid.setLocalWork(keyGroup, 1, 1);
            GridScheduler scheduler = new GridScheduler();
            scheduler.addWorkerGrid(graph + ".queries", queryGrid);
            scheduler.addWorkerGrid(graph + ".keys", keyGrid);
            Plan p = new Plan("backward", device.getPhysicalDevice().getDeviceName(), build(tg, scheduler, device), storage, params, w).withMods(planMods);
            p.tables = planTables;
            return p;
        });
        LAST.set(plan.execute(callParams, callMods, callTables));
        plan.tables.sumInto(mods, s.batch(), s.heads(), first.kvBlocks(), dParameters);
    }

    private static IntArray backwardParams(GradientGeometry gg, HeadLayouts layouts, int queryGroup, int keyGroup, int learned) {
        var first = layouts.first();
        IntArray p = DeviceGeometry.pack(gg.forward(), true, AttentionBackwardKernel.EXTRA_PARAMS);
        p.set(AttentionBackwardKernel.BLOCK_Q, first.blockQ());
        p.set(AttentionBackwardKernel.BLOCK_KV, first.blockKV());
        p.set(AttentionBackwardKernel.Q_BLOCKS, first.qBlocks());
        p.set(AttentionBackwardKernel.MASK_WORDS, DeviceLayout.maskWordsPerRow(first.blockKV()));
        p.set(AttentionBackwardKernel.QUERY_GROUP, queryGroup);
        p.set(AttentionBackwardKernel.KV_BLOCKS, first.kvBlocks());
        p.set(AttentionBackwardKernel.KEY_GROUP, keyGroup);
        long[] strides = {gg.dOOff(), gg.dOB(), gg.dOH(), gg.dORow(), gg.dqOff(), gg.dqB(), gg.dqH(), gg.dqRow(),
                gg.dkOff(), gg.dkB(), gg.dkH(), gg.dkRow(), gg.dvOff(), gg.dvB(), gg.dvH(), gg.dvRow()};
        for (int i = 0; i < strides.length; i++) p.set(AttentionBackwardKernel.DO_OFF + i, DeviceGeometry.toInt(strides[i]));
        p.set(AttentionBackwardKernel.LEARNED, learned);
        return p;
    }

    /** Items per work-group of the one-item-per-entry and one-item-per-row kernels; grids are padded to it. */
    private static final int FLAT_GROUP = 64;

    static void sparse(TornadoDevice device, AttentionGeometry g, Tensor q, Tensor k, Tensor v, CsrMatrix pattern, Tensor out, Tensor lse) {
        var s = g.shape();
        long scores = (long) s.batch() * s.heads() * pattern.nonZeros(), rows = (long) s.batch() * s.heads() * s.qLen();
        if (roundUp(Math.max(scores, rows), FLAT_GROUP) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("explicit sparse call with " + scores + " scores exceeds int indexing on the device");
        }
        List<MemorySegment> storage = storageOf(q, k, v, out, lse);
        Object key = new SparseKey(new Same(device), offsetFree(g), new Same(pattern), storage, pins(storage));
        Plan plan = plan(key, () -> {
            Wrapping w = new Wrapping();
            AttentionArrays t = AttentionArrays.of(w, q, k, v, out, lse);
            FloatArray qa = t.q(), ka = t.k(), va = t.v(), oa = t.out(), la = t.lse();
            IntArray params = sparseParams(g, pattern, lse != null);
            int[] offsets = pattern.rowOffsets(), colIndices = pattern.colIndices();
            // TornadoVM arrays cannot be empty: a pattern without entries still gets one slot.
            IntArray rowOffsets = IntArray.fromArray(offsets);
            IntArray cols = new IntArray(Math.max(1, colIndices.length));
            IntArray entryRows = new IntArray(Math.max(1, colIndices.length));
            for (int r = 0; r < pattern.rows(); r++) {
                for (int e = offsets[r]; e < offsets[r + 1]; e++) {
                    cols.set(e, colIndices[e]);
                    entryRows.set(e, r);
                }
            }
            FloatArray values = new FloatArray((int) Math.max(1, scores));
            FloatArray scale = FloatArray.fromElements(g.scale());
            String graph = "tesseraSparse" + GRAPH_IDS.incrementAndGet();
            TaskGraph tg = inputs(new TaskGraph(graph), List.of(q, k, v), List.of(qa, ka, va), out, oa, false, lse, la)
                    .transferToDevice(DataTransferMode.FIRST_EXECUTION, scale, rowOffsets, cols, entryRows, values)
                    .transferToDevice(DataTransferMode.EVERY_EXECUTION, params)
                    .task("sddmm", SparseKernel::sddmm, new KernelContext(), qa, ka, params, scale, entryRows, cols, values)
                    .task("spmm", SparseKernel::softmaxSpmm, new KernelContext(), va, oa, la, params, rowOffsets, cols, values)
                    .transferToHost(DataTransferMode.EVERY_EXECUTION, distinct(oa, la));
            WorkerGrid sddmmGrid = new WorkerGrid1D((int) roundUp(Math.max(1, scores), FLAT_GROUP));
            sddmmGrid.setLocalWork(FLAT_GROUP, 1, 1);
            WorkerGrid spmmGrid = new WorkerGrid1D((int) roundUp(Math.max(1, rows), FLAT_GROUP));
            spmmGrid.setLocalWork(FLAT_GROUP, 1, 1);
            GridScheduler scheduler = new GridScheduler();
            scheduler.addWorkerGrid(graph + ".sddmm", sddmmGrid);
            scheduler.addWorkerGrid(graph + ".spmm", spmmGrid);
            return new Plan("sparse", device.getPhysicalDevice().getDeviceName(), build(tg, scheduler, device), storage, params, w);
        });
        LAST.set(plan.execute(sparseParams(g, pattern, lse != null)));
    }

    static void gemm(TornadoDevice device, GemmCall call, Tensor a, Tensor b, Tensor c) {
        int tile = GemmKernel.TILE;
        long cols = roundUp(call.n(), tile), rows = roundUp(call.m(), tile);
        if (cols * rows > Integer.MAX_VALUE) throw new IllegalArgumentException("gemm grid " + rows + "×" + cols + " exceeds int indexing");
        List<MemorySegment> storage = storageOf(a, b, c, null, null);
        Object key = new GemmKey(new Same(device), call.m(), call.n(), call.k(), call.aRow(), call.aCol(), call.bRow(), call.bCol(), call.cRow(),
                call.alpha(), call.beta(), storage, pins(storage));
        Plan plan = plan(key, () -> {
            Wrapping w = new Wrapping();
            FloatArray aa = w.wrap(a, false), ba = w.wrap(b, false), ca = w.wrap(c, true);
            IntArray params = gemmParams(call);
            FloatArray coefficients = FloatArray.fromElements(call.alpha(), call.beta());
            String graph = "tesseraGemm" + GRAPH_IDS.incrementAndGet();
            TaskGraph tg = inputs(new TaskGraph(graph), List.of(a, b), List.of(aa, ba), c, ca, true, null, null)
                    .transferToDevice(DataTransferMode.FIRST_EXECUTION, coefficients)
                    .transferToDevice(DataTransferMode.EVERY_EXECUTION, params)
                    .task("kernel", GemmKernel::gemm, new KernelContext(), aa, ba, ca, params, coefficients)
                    .transferToHost(DataTransferMode.EVERY_EXECUTION, ca);
            WorkerGrid grid = new WorkerGrid2D((int) cols, (int) rows);
            grid.setLocalWork(tile, tile, 1);
            return new Plan("gemm", device.getPhysicalDevice().getDeviceName(), build(tg, graph, grid, device), storage, params, w);
        });
        LAST.set(plan.execute(gemmParams(call)));
    }

    private static IntArray gemmParams(GemmCall call) {
        IntArray params = new IntArray(GemmKernel.PARAMS);
        params.set(GemmKernel.M, call.m());
        params.set(GemmKernel.N, call.n());
        params.set(GemmKernel.K, call.k());
        params.set(GemmKernel.A_OFF, DeviceGeometry.toInt(call.aOff()));
        params.set(GemmKernel.A_ROW, DeviceGeometry.toInt(call.aRow()));
        params.set(GemmKernel.A_COL, DeviceGeometry.toInt(call.aCol()));
        params.set(GemmKernel.B_OFF, DeviceGeometry.toInt(call.bOff()));
        params.set(GemmKernel.B_ROW, DeviceGeometry.toInt(call.bRow()));
        params.set(GemmKernel.B_COL, DeviceGeometry.toInt(call.bCol()));
        params.set(GemmKernel.C_OFF, DeviceGeometry.toInt(call.cOff()));
        params.set(GemmKernel.C_ROW, DeviceGeometry.toInt(call.cRow()));
        return params;
    }

    private static IntArray sparseParams(AttentionGeometry g, CsrMatrix pattern, boolean hasLse) {
        IntArray params = DeviceGeometry.pack(g, hasLse, SparseKernel.EXTRA_PARAMS);
        params.set(SparseKernel.NON_ZEROS, pattern.nonZeros());
        return params;
    }

    private static TornadoExecutionPlan build(TaskGraph tg, String graph, WorkerGrid grid, TornadoDevice device) {
        return build(tg, new GridScheduler(graph + ".kernel", grid), device);
    }

    private static TornadoExecutionPlan build(TaskGraph tg, GridScheduler scheduler, TornadoDevice device) {
        return new TornadoExecutionPlan(tg.snapshot()).withDevice(device).withGridScheduler(scheduler).withProfiler(ProfilerMode.SILENT);
    }

    private static Plan plan(Object key, Supplier<Plan> build) {
        synchronized (PLANS) {
            Plan p = PLANS.get(key);
            if (p != null && p.alive()) return p;
            if (p != null) {
                PLANS.remove(key);
                p.close();
            }
            p = build.get();
            PLANS.put(key, p);
            return p;
        }
    }

    private static IntArray attentionParams(AttentionGeometry g, HeadLayouts layouts, int maskWordsPerRow, int workGroup, boolean hasLse) {
        var first = layouts.first();
        IntArray p = DeviceGeometry.pack(g, hasLse, AttentionKernel.EXTRA_PARAMS);
        p.set(AttentionKernel.BLOCK_Q, first.blockQ());
        p.set(AttentionKernel.BLOCK_KV, first.blockKV());
        p.set(AttentionKernel.Q_BLOCKS, first.qBlocks());
        p.set(AttentionKernel.MASK_WORDS, maskWordsPerRow);
        p.set(AttentionKernel.WORK_GROUP, workGroup);
        return p;
    }

    private static List<MemorySegment> storageOf(Tensor... tensors) {
        List<MemorySegment> all = new ArrayList<>(tensors.length);
        for (Tensor t : tensors) {
            if (t != null) all.add(storage(t));
        }
        return List.copyOf(all);
    }

    /**
     * The memory a plan wraps for {@code t}: its whole storage with the header slot in front, or,
     * for a tensor over foreign memory ({@code Tensor.wrap}, no header slot), its segment, which is
     * staged through a TornadoVM array.
     */
    private static MemorySegment storage(Tensor t) {
        return t.hasHeaderSlot() ? t.storageWithHeader() : t.segment();
    }

    /** Elements of the storage {@code t} lives in (offsets and strides index into it). */
    private static long storageElements(Tensor t) {
        MemorySegment s = storage(t);
        return ((t.hasHeaderSlot() ? s.byteSize() - Tensor.HEADER_BYTES : s.byteSize())) / Float.BYTES;
    }

    /** A tensor over foreign memory and the TornadoVM array it is staged through; {@code written}: copied back after each execution. */
    private record Staged(MemorySegment source, FloatArray array, boolean written) {}

    /**
     * One plan's tensors as TornadoVM arrays. A tensor's whole storage is wrapped in place: its
     * header slot is where TornadoVM keeps the element count, and views of one storage share one
     * array. A tensor over foreign memory has no header slot: it is staged, that is copied into a
     * TornadoVM array before every execution (and back after it, when the kernel writes it); the
     * copies are counted in {@link DeviceRun#hostCopies}.
     */
    private static final class Wrapping {
        final Map<MemorySegment, FloatArray> wrapped = new HashMap<>();
        final List<Staged> staged = new ArrayList<>();

        FloatArray wrap(Tensor t, boolean written) {
            long elements = storageElements(t);
            if (elements > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("tensor " + t + " lives in a storage of " + elements + " floats; TornadoVM arrays index with int");
            }
            MemorySegment storage = storage(t);
            FloatArray array = wrapped.get(storage);
            if (array == null) {
                array = t.hasHeaderSlot() ? FloatArray.fromSegmentShallow(storage) : new FloatArray((int) elements);
                wrapped.put(storage, array);
            }
            if (!t.hasHeaderSlot()) {
                boolean known = false;
                for (int i = 0; i < staged.size(); i++) {
                    Staged s = staged.get(i);
                    if (s.array() == array) {
                        known = true;
                        if (written && !s.written()) staged.set(i, new Staged(s.source(), array, true));
                    }
                }
                if (!known) staged.add(new Staged(storage, array, written));
            }
            return array;
        }
    }

    /** An attention call's tensors as TornadoVM arrays; a dummy one-element lse when there is none. */
    private record AttentionArrays(FloatArray q, FloatArray k, FloatArray v, FloatArray out, FloatArray lse) {
        static AttentionArrays of(Wrapping w, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {
            return new AttentionArrays(w.wrap(q, false), w.wrap(k, false), w.wrap(v, false), w.wrap(out, true),
                    lse == null ? new FloatArray(1) : w.wrap(lse, true));
        }
    }

    /**
     * Declares the storage of {@code t} constant until {@link #unpin}: plans send it on their first
     * execution only. Pinning again (after writing it) starts a new generation, hence new plans.
     */
    static void pin(Tensor t) {
        MemorySegment storage = storage(t);
        PINNED.put(storage, new Pin(storage, PIN_GENERATIONS.incrementAndGet()));
    }

    static void unpin(Tensor t) { PINNED.remove(storage(t)); }

    /** The pinned storage itself is kept: segments compare by address and size only, not by arena. */
    private record Pin(MemorySegment storage, long generation) {}

    private static final Map<MemorySegment, Pin> PINNED = new java.util.concurrent.ConcurrentHashMap<>();
    private static final AtomicLong PIN_GENERATIONS = new AtomicLong();

    /**
     * The pin generation of {@code storage}, 0 when it is not pinned. A pin whose arena has closed
     * is dropped, so a new tensor that reuses its address is not taken for pinned.
     */
    private static long pinGeneration(MemorySegment storage) {
        Pin pin = PINNED.get(storage);
        if (pin == null) return 0;
        if (!pin.storage().scope().isAlive()) {
            PINNED.remove(storage, pin);
            return 0;
        }
        return pin.storage().scope().equals(storage.scope()) ? pin.generation() : 0;
    }

    /** Each storage's pin generation: part of a plan's key. */
    private static List<Long> pins(List<MemorySegment> storage) {
        List<Long> out = new ArrayList<>(storage.size());
        for (MemorySegment s : storage) out.add(pinGeneration(s));
        return List.copyOf(out);
    }

    /**
     * The host → device transfers of a call's tensors: pinned inputs on the first execution only,
     * other inputs on every execution, and the outputs only when they do not cover their whole
     * storage (the kernels write every output element, but copying a view's storage back would
     * otherwise overwrite the rest of it with whatever the device held) or the kernel reads them
     * ({@code outputRead}: GEMM's beta·c). An input that shares its storage with an output is never
     * treated as pinned.
     */
    private static TaskGraph inputs(TaskGraph tg, List<Tensor> inputTensors, List<FloatArray> inputArrays,
                                    Tensor out, FloatArray outArray, boolean outputRead, Tensor lse, FloatArray lseArray) {
        List<Object> once = new ArrayList<>(), every = new ArrayList<>();
        for (int i = 0; i < inputArrays.size(); i++) {
            FloatArray a = inputArrays.get(i);
            if (once.contains(a) || every.contains(a)) continue;
            boolean pinned = pinGeneration(storage(inputTensors.get(i))) != 0 && a != outArray && a != lseArray;
            (pinned ? once : every).add(a);
        }
        boolean sendOut = outputRead || !coversStorage(out) || inputArrays.contains(outArray);
        if (sendOut && !every.contains(outArray)) {
            once.remove(outArray);
            every.add(outArray);
        }
        boolean sendLse = lse != null && (!coversStorage(lse) || inputArrays.contains(lseArray) || lseArray == outArray);
        if (sendLse && !every.contains(lseArray)) {
            once.remove(lseArray);
            every.add(lseArray);
        }
        if (!once.isEmpty()) tg = tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, once.toArray());
        return tg.transferToDevice(DataTransferMode.EVERY_EXECUTION, every.toArray());
    }

    private static boolean coversStorage(Tensor t) {
        return t.offset() == 0 && t.isContiguous() && t.elementCount() == storageElements(t);
    }

    private static Object[] distinct(FloatArray... arrays) {
        List<Object> out = new ArrayList<>(arrays.length);
        for (FloatArray a : arrays) {
            boolean seen = false;
            for (Object o : out) seen |= o == a;
            if (!seen) out.add(a);
        }
        return out.toArray();
    }

    private static long roundUp(long x, int multiple) { return (x + multiple - 1) / multiple * multiple; }
}
