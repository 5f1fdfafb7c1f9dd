package io.tessera.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * A tensor of any rank over a {@link MemorySegment}: an {@linkplain ElementType element type}
 * (float32 unless asked otherwise; bfloat16 and float16 for half-precision storage), a shape,
 * element strides and an element offset into one shared allocation. Views ({@link #slice}, {@link #select},
 * {@link #transpose}) share memory; {@link #contiguous} copies.
 *
 * <p>Memory belongs to the {@link Arena} the caller passes in: closing the arena ends every
 * tensor and view allocated in it, and any later use throws {@link IllegalStateException}.
 *
 * <p>Each allocation is 64-byte aligned at its first element and keeps {@value #HEADER_BYTES}
 * bytes free right before it, so that a TornadoVM native array (which stores a header of that
 * size in front of its data) can wrap the very same memory without a copy; see
 * {@link #segmentWithHeader()}.
 *
 * <p>A tensor can also {@linkplain #wrap(MemorySegment, long[], long[]) wrap} memory another library
 * owns (a direct {@link FloatBuffer}, an ONNX Runtime or DJL buffer, a mapped {@code .npy} file)
 * without copying. Such a tensor has no header slot ({@link #hasHeaderSlot()} is false): the CPU
 * backends use it in place, while a device backend that needs the slot (TornadoVM) stages it
 * through a copy on every call (and reports the copies).
 */
public final class Tensor {
    /** Size of the header TornadoVM native arrays keep before their data. */
    public static final long HEADER_BYTES = 16;
    /** Alignment of the first element of every allocation: one cache line, one AVX-512 vector. */
    public static final long ALIGNMENT = 64;

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final MemorySegment data;     // from the first element of the allocation to its end
    private final MemorySegment allocation; // null for wrapped memory: no header slot in front of it
    private final long offset;            // in elements, from the start of data
    private final long[] shape;
    private final long[] strides;         // in elements
    private final ElementType type;

    private Tensor(MemorySegment allocation, MemorySegment data, long offset, long[] shape, long[] strides, ElementType type) {
        this.type = type;
        this.allocation = allocation;
        this.data = data;
        this.offset = offset;
        this.shape = shape;
        this.strides = strides;
    }

    // ---------------------------------------------------------------- creation

    /** A zero-filled contiguous (row-major) float32 tensor allocated in {@code arena}. */
    public static Tensor zeros(Arena arena, long... shape) {
        return zeros(arena, ElementType.F32, shape);
    }

    /** A zero-filled contiguous (row-major) tensor of element type {@code type} allocated in {@code arena}. */
    public static Tensor zeros(Arena arena, ElementType type, long... shape) {
        if (arena == null) throw new NullPointerException("arena");
        if (type == null) throw new NullPointerException("type");
        long[] s = Shapes.checkShape("shape", shape);
        long count = Shapes.elementCount("shape", s);
        long bytes = Shapes.bytes("shape", s, count, type.byteSize());
        // ALIGNMENT bytes in front of the data: the header lives in the last HEADER_BYTES of them.
        // Large tensors on huge pages where the platform allows (see HugePageMemory): zeroed, owned by the arena alike.
        MemorySegment allocation = HugePageMemory.allocate(arena, ALIGNMENT + bytes);
        if (allocation == null) allocation = arena.allocate(ALIGNMENT + bytes, ALIGNMENT);
        MemorySegment data = allocation.asSlice(ALIGNMENT, bytes);
        return new Tensor(allocation, data, 0, s, Shapes.rowMajorStrides(s), type);
    }

    /** A contiguous float32 tensor holding a copy of {@code values}, which must have exactly as many elements as the shape. */
    public static Tensor of(Arena arena, float[] values, long... shape) {
        return of(arena, ElementType.F32, values, shape);
    }

    /**
     * A contiguous tensor of element type {@code type} holding {@code values} rounded to that type
     * (nearest, ties to even); {@code values} must have exactly as many elements as the shape.
     */
    public static Tensor of(Arena arena, ElementType type, float[] values, long... shape) {
        if (values == null) throw new NullPointerException("values");
        if (type == null) throw new NullPointerException("type");
        long[] s = Shapes.checkShape("shape", shape);
        long count = Shapes.elementCount("shape", s);
        if (count != values.length) {
            throw new IllegalArgumentException("values has " + values.length + " elements but shape "
                    + Arrays.toString(s) + " needs " + count);
        }
        Tensor t = zeros(arena, type, s);
        if (type == ElementType.F32) MemorySegment.copy(values, 0, t.data, ValueLayout.JAVA_FLOAT, 0, values.length);
        else for (int i = 0; i < values.length; i++) type.set(t.data, i, values[i]);
        return t;
    }

    /**
     * A row-major tensor over memory someone else allocated, without copying; see
     * {@link #wrap(MemorySegment, long[], long[])}.
     */
    public static Tensor wrap(MemorySegment segment, long... shape) {
        long[] s = Shapes.checkShape("shape", shape);
        Shapes.elementCount("shape", s);
        return wrap(segment, s, Shapes.rowMajorStrides(s));
    }

    /** A float32 tensor over memory someone else allocated; see {@link #wrap(MemorySegment, ElementType, long[], long[])}. */
    public static Tensor wrap(MemorySegment segment, long[] shape, long[] strides) {
        return wrap(segment, ElementType.F32, shape, strides);
    }

    /**
     * A tensor over memory someone else allocated, without copying: element {@code (i0, …, ik)} is the
     * element of type {@code type} at byte {@code type.byteSize()·Σ i·stride} of {@code segment}, in
     * native byte order (a NumPy or PyTorch float16 buffer is {@link ElementType#F16}, a bfloat16
     * one {@link ElementType#BF16}). Reads and writes go
     * straight to that memory, which must stay valid while the tensor is used (its lifetime is the
     * segment's: a closed arena makes later use throw {@link IllegalStateException}).
     *
     * <p>Checked up front, each with an {@link IllegalArgumentException} naming the value: the segment
     * is native (off-heap; a {@code float[]} goes through {@link #of}), writable, its address is a
     * multiple of the element size (64 bytes is faster but not required), strides are non-negative (positive along
     * dimensions longer than 1) and give every element its own address (taken from the smallest up,
     * each stride exceeds the reach of the smaller ones, as in any row-major, column-major, padded or
     * permuted layout: no broadcast or self-overlapping views), and every element the shape and
     * strides reach lies inside the segment.
     *
     * <p>The CPU backends use the memory in place. The TornadoVM backend cannot: it wraps a tensor's
     * storage in place only when {@value #HEADER_BYTES} bytes in front of it are free for its array
     * header, which a wrapped segment does not have ({@link #hasHeaderSlot()} is false and
     * {@link #storageWithHeader()} throws {@link IllegalStateException}). It stages a wrapped tensor
     * through a copy on every call ({@code DeviceRun.hostCopies} counts them); copy it once with
     * {@link #contiguous(Arena)} to avoid that.
     */
    public static Tensor wrap(MemorySegment segment, ElementType type, long[] shape, long[] strides) {
        if (segment == null) throw new NullPointerException("segment");
        if (type == null) throw new NullPointerException("type");
        long[] s = Shapes.checkShape("shape", shape);
        if (strides == null) throw new NullPointerException("strides");
        if (strides.length != s.length) {
            throw new IllegalArgumentException("strides " + Arrays.toString(strides) + " has " + strides.length
                    + " entries but shape " + Arrays.toString(s) + " has rank " + s.length);
        }
        Shapes.elementCount("shape", s);
        if (!segment.isNative()) {
            throw new IllegalArgumentException("segment " + segment + " is on the Java heap; Tensor.wrap needs native memory "
                    + "(the kernels read it with the Vector API): copy a float[] with Tensor.of(arena, values, shape)");
        }
        if (segment.isReadOnly()) {
            throw new IllegalArgumentException("segment " + segment + " is read-only; Tensor.wrap needs writable memory "
                    + "(a tensor may be an output): copy it with Tensor.zeros(arena, shape) and copyFrom");
        }
        if (segment.address() % type.byteSize() != 0) {
            throw new IllegalArgumentException("segment address 0x" + Long.toHexString(segment.address())
                    + " is not a multiple of " + type.byteSize() + " bytes (" + type + " alignment)");
        }
        long lastElement = 0;   // element index of the last element the shape and strides reach
        for (int d = 0; d < s.length; d++) {
            long minStride = s[d] == 1 ? 0 : 1;
            if (strides[d] < minStride) {
                throw new IllegalArgumentException("strides[" + d + "]=" + strides[d] + " must be >= " + minStride
                        + " for shape[" + d + "]=" + s[d] + " in strides " + Arrays.toString(strides));
            }
            try {
                lastElement = Math.addExact(lastElement, Math.multiplyExact(s[d] - 1, strides[d]));
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(s) + " with strides " + Arrays.toString(strides)
                        + " reaches an element index beyond what a long can count");
            }
        }
        // Every element at its own address, and layouts the overlap test can walk in address order:
        // taken from the smallest stride up, each stride must exceed the reach of the ones below it.
        Integer[] order = new Integer[s.length];
        for (int d = 0; d < s.length; d++) order[d] = d;
        Arrays.sort(order, (x, y) -> Long.compare(strides[x], strides[y]));
        long reach = 0;   // largest element offset the dimensions below can produce
        for (int d : order) {
            if (s[d] == 1) continue;
            if (strides[d] <= reach) {
                throw new IllegalArgumentException("strides " + Arrays.toString(strides) + " make elements of shape " + Arrays.toString(s)
                        + " share memory: strides[" + d + "]=" + strides[d] + " is not larger than " + reach
                        + ", the reach of the dimensions with smaller strides; each element needs its own address");
            }
            reach += (s[d] - 1) * strides[d];   // cannot overflow: bounded by lastElement, checked above
        }
        long available = segment.byteSize() / type.byteSize();
        if (lastElement >= available) {
            throw new IllegalArgumentException("shape " + Arrays.toString(s) + " with strides " + Arrays.toString(strides)
                    + " reaches element " + lastElement + " but the segment holds " + available + (type == ElementType.F32 ? " floats (" : " " + type + " elements (")
                    + segment.byteSize() + " bytes)");
        }
        return new Tensor(null, segment, 0, s, strides.clone(), type);
    }

    /**
     * A tensor over a direct {@link FloatBuffer}'s elements from its position to its limit, without
     * copying; row-major when {@code strides} is omitted. The buffer must be in native byte order
     * ({@link ByteOrder#nativeOrder()}; a {@code ByteBuffer.asFloatBuffer()} view inherits the byte
     * buffer's order, which is big-endian unless set) and stays reachable while the tensor is. Same
     * checks and same TornadoVM caveat as {@link #wrap(MemorySegment, long[], long[])}.
     */
    public static Tensor wrap(FloatBuffer buffer, long... shape) {
        long[] s = Shapes.checkShape("shape", shape);
        Shapes.elementCount("shape", s);
        return wrap(buffer, s, Shapes.rowMajorStrides(s));
    }

    /** A strided tensor over a direct {@link FloatBuffer}; see {@link #wrap(FloatBuffer, long...)}. */
    public static Tensor wrap(FloatBuffer buffer, long[] shape, long[] strides) {
        if (buffer == null) throw new NullPointerException("buffer");
        if (!buffer.isDirect()) {
            throw new IllegalArgumentException("buffer is a heap FloatBuffer; Tensor.wrap needs a direct one "
                    + "(ByteBuffer.allocateDirect(n).order(ByteOrder.nativeOrder()).asFloatBuffer()), or copy its array with Tensor.of");
        }
        if (buffer.order() != ByteOrder.nativeOrder()) {
            throw new IllegalArgumentException("buffer byte order is " + buffer.order() + " but the kernels read "
                    + ByteOrder.nativeOrder() + "; set .order(ByteOrder.nativeOrder()) on the ByteBuffer before asFloatBuffer()");
        }
        return wrap(MemorySegment.ofBuffer(buffer), ElementType.F32, shape, strides);
    }

    /** Standard normal entries scaled by {@code stddev}, reproducible from {@code seed}. */
    public static Tensor randomNormal(Arena arena, long seed, float stddev, long... shape) {
        if (!(stddev >= 0) || stddev == Float.POSITIVE_INFINITY) throw new IllegalArgumentException("stddev must be finite and >= 0, got " + stddev);
        Tensor t = zeros(arena, shape);
        SplittableRandom random = new SplittableRandom(seed);
        for (long i = 0, n = t.elementCount(); i < n; i++) {
            t.data.setAtIndex(FLOAT, i, (float) (random.nextGaussian() * stddev));
        }
        return t;
    }

    /** Uniform entries in [{@code low}, {@code high}), reproducible from {@code seed}. */
    public static Tensor randomUniform(Arena arena, long seed, float low, float high, long... shape) {
        if (!Float.isFinite(low)) throw new IllegalArgumentException("low must be finite, got " + low);
        if (!Float.isFinite(high)) throw new IllegalArgumentException("high must be finite, got " + high);
        if (!(low < high)) throw new IllegalArgumentException("low must be < high, got low=" + low + " high=" + high);
        Tensor t = zeros(arena, shape);
        SplittableRandom random = new SplittableRandom(seed);
        for (long i = 0, n = t.elementCount(); i < n; i++) {
            t.data.setAtIndex(FLOAT, i, (float) random.nextDouble(low, high));
        }
        return t;
    }

    // ---------------------------------------------------------------- geometry

    public int rank() { return shape.length; }

    /** How the elements are stored: {@link ElementType#F32} unless the tensor was made with another type. */
    public ElementType type() { return type; }

    public long[] shape() { return shape.clone(); }

    public long[] strides() { return strides.clone(); }

    public long size(int dim) { return shape[checkDim("dim", dim)]; }

    public long stride(int dim) { return strides[checkDim("dim", dim)]; }

    /** Element offset of index (0, …, 0) in {@link #segment()}. */
    public long offset() { return offset; }

    public long elementCount() {
        long n = 1;
        for (long d : shape) n *= d;   // cannot overflow: checked when the allocation was made
        return n;
    }

    /** True when elements are laid out row-major without gaps (strides of size-1 dims are ignored). */
    public boolean isContiguous() {
        long expected = 1;
        for (int d = shape.length - 1; d >= 0; d--) {
            if (shape[d] != 1 && strides[d] != expected) return false;
            expected *= shape[d];
        }
        return true;
    }

    /** True when the last dimension is unit-stride, which is all the kernels need for rows. */
    public boolean hasUnitInnerStride() {
        return shape[shape.length - 1] == 1 || strides[shape.length - 1] == 1;
    }

    /**
     * The memory the kernels read: element {@code (i0, …, ik)} is at element index
     * {@code offset() + Σ i·stride} of this segment, that is at byte {@code type().byteSize()} times
     * that index. Throws if the arena is closed.
     */
    public MemorySegment segment() {
        checkAlive();
        return data;
    }

    /**
     * The segment TornadoVM wraps without copying: the {@value #HEADER_BYTES} reserved header bytes
     * followed by the data. Only for a contiguous tensor that starts at its allocation's first element.
     */
    public MemorySegment segmentWithHeader() {
        checkAlive();
        checkHeaderSlot("segmentWithHeader");
        if (offset != 0 || !isContiguous()) {
            throw new IllegalStateException("segmentWithHeader needs a contiguous tensor at offset 0, got " + this);
        }
        return allocation.asSlice(ALIGNMENT - HEADER_BYTES, HEADER_BYTES + elementCount() * type.byteSize());
    }

    /**
     * The whole storage this tensor (or the tensor it is a view of) lives in, preceded by the
     * reserved 16-byte header slot: element {@code i} of the storage is at byte
     * {@code 16 + type().byteSize()·i}, and
     * this tensor's elements are at {@link #offset()} and {@link #strides()} within it. Lets a device
     * backend wrap any view without copying (TornadoVM's {@code FloatArray.fromSegmentShallow}).
     */
    public MemorySegment storageWithHeader() {
        checkAlive();
        checkHeaderSlot("storageWithHeader");
        return allocation.asSlice(ALIGNMENT - HEADER_BYTES, HEADER_BYTES + data.byteSize());
    }

    /**
     * True when some element of this tensor and some element of {@code other} are the same memory,
     * so that writing one changes the other. Views of different allocations never overlap; wrapped
     * tensors are compared by address, so two wraps of one buffer are checked like views. Exact
     * for the views this class makes (slices, selects, transposes, reshapes of an allocation) and
     * for every wrapped layout (whose strides {@code wrap} requires to nest):
     * two disjoint views of one buffer, e.g. two heads, or the two halves of the channels, answer
     * false even when they interleave. Costs nothing unless the two address ranges intersect, then
     * a merge of their contiguous runs.
     */
    public boolean overlaps(Tensor other) {
        if (other == null) throw new NullPointerException("other");
        checkAlive();
        other.checkAlive();
        // Compared as byte addresses, not element indices: wrapped tensors (Tensor.wrap) over one
        // memory region may start at different addresses, and Tessera's own allocations never share bytes.
        long baseA = data.address(), baseB = other.data.address();
        long sizeA = type.byteSize(), sizeB = other.type.byteSize();   // the two may store different element types
        if (baseA + lastIndex() * sizeA + (sizeA - 1) < baseB + other.offset * sizeB
                || baseB + other.lastIndex() * sizeB + (sizeB - 1) < baseA + offset * sizeA) return false;
        Runs ra = new Runs(this), rb = new Runs(other);
        while (ra.hasRun() && rb.hasRun()) {   // both in increasing address order
            long aStart = baseA + ra.start() * sizeA, aEnd = baseA + ra.end() * sizeA + (sizeA - 1);
            long bStart = baseB + rb.start() * sizeB, bEnd = baseB + rb.end() * sizeB + (sizeB - 1);
            if (aEnd < bStart) ra.next();
            else if (bEnd < aStart) rb.next();
            else return true;
        }
        return false;
    }

    /**
     * Element index of the last element; the first is {@link #offset} (strides are never negative).
     * No array: a decode step checks its tensors with {@link #overlaps} and must not allocate.
     */
    private long lastIndex() {
        long last = offset;
        for (int d = 0; d < shape.length; d++) last += (shape[d] - 1) * strides[d];
        return last;
    }

    /**
     * The tensor's elements as runs of consecutive element indices, in increasing order: the run
     * dimension is a unit-stride one (else runs are single elements), the others are visited from
     * the largest stride to the smallest. Views of one row-major allocation keep every stride at
     * least the extent it spans below it, so this order is increasing and the runs are disjoint.
     */
    private static final class Runs {
        private final long[] extent, stride, index;
        private final long runLength;
        private long base;
        private boolean more = true;

        Runs(Tensor t) {
            int runDim = -1;
            for (int d = t.shape.length - 1; d >= 0; d--) {
                if (t.strides[d] == 1 && t.shape[d] > 1) { runDim = d; break; }
            }
            runLength = runDim < 0 ? 1 : t.shape[runDim];
            Integer[] dims = new Integer[t.shape.length];
            int count = 0;
            for (int d = 0; d < t.shape.length; d++) if (d != runDim && t.shape[d] > 1) dims[count++] = d;
            Integer[] outer = Arrays.copyOf(dims, count);
            Arrays.sort(outer, (x, y) -> Long.compare(t.strides[y], t.strides[x]));
            extent = new long[count];
            stride = new long[count];
            index = new long[count];
            for (int i = 0; i < count; i++) { extent[i] = t.shape[outer[i]]; stride[i] = t.strides[outer[i]]; }
            base = t.offset;
        }

        boolean hasRun() { return more; }
        long start() { return base; }
        long end() { return base + runLength - 1; }

        void next() {
            for (int i = index.length - 1; i >= 0; i--) {
                if (++index[i] < extent[i]) { base += stride[i]; return; }
                base -= (extent[i] - 1) * stride[i];
                index[i] = 0;
            }
            more = false;
        }
    }

    /**
     * True when the {@value #HEADER_BYTES} bytes before the storage are Tessera's to use (every
     * allocation made here); false for memory taken over with {@code wrap}.
     */
    public boolean hasHeaderSlot() { return allocation != null; }

    /** True while the arena that owns the memory is open. */
    public boolean isAlive() { return data.scope().isAlive(); }

    // ---------------------------------------------------------------- element access

    /** The element at {@code index}, widened to float32 (exact). */
    public float get(long... index) {
        checkAlive();
        return type.get(data, elementIndex(index));
    }

    /** Stores {@code value} at {@code index}, rounded to this tensor's type (nearest, ties to even). */
    public void set(float value, long... index) {
        checkAlive();
        type.set(data, elementIndex(index), value);
    }

    /** Element index in {@link #segment()} of a multi-index, bounds-checked. */
    public long elementIndex(long... index) {
        if (index.length != shape.length) {
            throw new IllegalArgumentException("index has " + index.length + " coordinates, tensor rank is " + shape.length);
        }
        long e = offset;
        for (int d = 0; d < shape.length; d++) {
            if (index[d] < 0 || index[d] >= shape[d]) {
                throw new IndexOutOfBoundsException("index[" + d + "]=" + index[d] + " outside [0, " + shape[d] + ") of shape " + Arrays.toString(shape));
            }
            e += index[d] * strides[d];
        }
        return e;
    }

    /** All elements in row-major order, widened to float32 (exact). Needs fewer than 2^31 elements. */
    public float[] toArray() {
        checkAlive();
        long n = elementCount();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("toArray: tensor " + Arrays.toString(shape) + " has " + n + " elements, more than a Java array holds");
        }
        float[] out = new float[(int) n];
        if (isContiguous() && type == ElementType.F32) {
            MemorySegment.copy(data, ValueLayout.JAVA_FLOAT, offset * Float.BYTES, out, 0, out.length);
        } else {
            forEachRow((row, base) -> {
                long inner = shape[shape.length - 1], step = strides[shape.length - 1];
                for (long j = 0; j < inner; j++) out[(int) (row * inner + j)] = type.get(data, base + j * step);
            });
        }
        return out;
    }

    /** Sets every element to {@code value} (rounded to this tensor's type). */
    public void fill(float value) {
        checkAlive();
        forEachRow((row, base) -> {
            long inner = shape[shape.length - 1], step = strides[shape.length - 1];
            for (long j = 0; j < inner; j++) type.set(data, base + j * step, value);
        });
    }

    /**
     * Copies {@code source} (same shape, any strides, any element type) into this tensor; elements
     * of another type are converted: widened exactly, or rounded to nearest, ties to even.
     */
    public void copyFrom(Tensor source) {
        checkAlive();
        source.checkAlive();
        if (!Arrays.equals(shape, source.shape)) {
            throw new IllegalArgumentException("source shape " + Arrays.toString(source.shape) + " differs from target shape " + Arrays.toString(shape));
        }
        long inner = shape[shape.length - 1];
        int lastDim = shape.length - 1;
        int size = type.byteSize();
        if (type == source.type && hasUnitInnerStride() && source.hasUnitInnerStride()) {
            forEachRow((row, base) -> MemorySegment.copy(source.data, (source.rowBase(row)) * size, data, base * size, inner * size));
        } else {
            ElementType from = source.type, to = type;
            forEachRow((row, base) -> {
                long src = source.rowBase(row);
                for (long j = 0; j < inner; j++) {
                    to.set(data, base + j * strides[lastDim], from.get(source.data, src + j * source.strides[lastDim]));
                }
            });
        }
    }

    /** A contiguous copy in {@code arena} of the same element type (always a copy, even when this tensor is contiguous). */
    public Tensor contiguous(Arena arena) {
        return to(arena, type);
    }

    /**
     * A contiguous copy in {@code arena} with element type {@code type} (always a copy): widening to
     * float32 is exact, narrowing rounds to nearest, ties to even. {@code t.to(arena, BF16)} is how
     * float32 weights or a float32 KV cache become half-precision storage.
     */
    public Tensor to(Arena arena, ElementType type) {
        Tensor copy = zeros(arena, type, shape);
        copy.copyFrom(this);
        return copy;
    }

    // ---------------------------------------------------------------- views

    /** The view of indices [{@code from}, {@code to}) along {@code dim}. */
    public Tensor slice(int dim, long from, long to) {
        checkDim("dim", dim);
        if (from < 0 || to > shape[dim] || from >= to) {
            throw new IllegalArgumentException("slice [" + from + ", " + to + ") is not a non-empty range inside [0, " + shape[dim] + ") of dim " + dim);
        }
        long[] s = shape.clone();
        s[dim] = to - from;
        return new Tensor(allocation, data, offset + from * strides[dim], s, strides.clone(), type);
    }

    /** The view at {@code index} along {@code dim}, with that dimension removed (rank drops by one). */
    public Tensor select(int dim, long index) {
        checkDim("dim", dim);
        if (shape.length == 1) throw new IllegalArgumentException("select needs rank >= 2, tensor is " + Arrays.toString(shape));
        if (index < 0 || index >= shape[dim]) {
            throw new IndexOutOfBoundsException("index " + index + " outside [0, " + shape[dim] + ") of dim " + dim);
        }
        long[] s = new long[shape.length - 1], st = new long[shape.length - 1];
        for (int d = 0, o = 0; d < shape.length; d++) {
            if (d == dim) continue;
            s[o] = shape[d];
            st[o++] = strides[d];
        }
        return new Tensor(allocation, data, offset + index * strides[dim], s, st, type);
    }

    /** The view with dimensions {@code a} and {@code b} swapped. */
    public Tensor transpose(int a, int b) {
        checkDim("a", a);
        checkDim("b", b);
        long[] s = shape.clone(), st = strides.clone();
        s[a] = shape[b]; s[b] = shape[a];
        st[a] = strides[b]; st[b] = strides[a];
        return new Tensor(allocation, data, offset, s, st, type);
    }

    /** A view with a new shape over the same elements; the tensor must be contiguous. */
    public Tensor reshape(long... newShape) {
        long[] s = Shapes.checkShape("newShape", newShape);
        if (!isContiguous()) throw new IllegalStateException("reshape needs a contiguous tensor, got " + this + "; call contiguous(arena) first");
        if (Shapes.elementCount("newShape", s) != elementCount()) {
            throw new IllegalArgumentException("newShape " + Arrays.toString(s) + " has a different element count from " + Arrays.toString(shape));
        }
        return new Tensor(allocation, data, offset, s, Shapes.rowMajorStrides(s), type);
    }

    @Override
    public String toString() {
        return "Tensor" + (type == ElementType.F32 ? "" : "<" + type + ">") + Arrays.toString(shape) + (isContiguous() ? "" : " strides=" + Arrays.toString(strides))
                + (offset != 0 ? " offset=" + offset : "") + (isAlive() ? "" : " (closed)");
    }

    // ---------------------------------------------------------------- internals

    private interface RowAction { void apply(long row, long base); }

    /** Visits every innermost row: its row-major ordinal and the element index of its first element. */
    private void forEachRow(RowAction action) {
        int outerDims = shape.length - 1;
        long rows = 1;
        for (int d = 0; d < outerDims; d++) rows *= shape[d];
        for (long row = 0; row < rows; row++) action.apply(row, rowBase(row));
    }

    private long rowBase(long row) {
        long base = offset, rem = row;
        for (int d = shape.length - 2; d >= 0; d--) {
            base += (rem % shape[d]) * strides[d];
            rem /= shape[d];
        }
        return base;
    }

    private void checkAlive() {
        if (!data.scope().isAlive()) {
            throw new IllegalStateException("tensor " + Arrays.toString(shape) + " used after its arena was closed");
        }
    }

    private void checkHeaderSlot(String method) {
        if (allocation == null) {
            throw new IllegalStateException(method + ": tensor " + this + " wraps memory allocated elsewhere (Tensor.wrap), which has no "
                    + HEADER_BYTES + "-byte header slot in front of it for a device array; copy it with contiguous(arena) first");
        }
    }

    private int checkDim(String name, int dim) {
        if (dim < 0 || dim >= shape.length) {
            throw new IllegalArgumentException(name + "=" + dim + " is not a dimension of a rank-" + shape.length + " tensor");
        }
        return dim;
    }
}
