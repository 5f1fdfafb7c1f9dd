package io.tessera.tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * NumPy's {@code .npy} files, the format Python users exchange arrays in: little-endian float32
 * ({@code '<f4'}), float64 ({@code '<f8'}) and float16 ({@code '<f2'}, read into and written from
 * {@link ElementType#F16} tensors; NumPy has no bfloat16, so a {@link ElementType#BF16} tensor is
 * written as float32, exactly), C (row-major) or Fortran (column-major) order, format
 * versions 1 to 3. Anything else (big-endian, integers, structured or object dtypes, 0-d or empty
 * arrays) is refused with an {@link IllegalArgumentException} naming the file and the header field.
 *
 * <p>{@link #read} copies into a Tessera allocation; {@link #map} wraps a float32 or float16 file in place.
 */
public final class Npy {
    private Npy() {}

    /** Element type of a {@code .npy} file. */
    public enum DType {
        FLOAT32("<f4", 4), FLOAT64("<f8", 8), FLOAT16("<f2", 2);

        final String descr;
        final int bytes;

        DType(String descr, int bytes) {
            this.descr = descr;
            this.bytes = bytes;
        }
    }

    /** Memory order of a {@code .npy} file: C is row-major (NumPy's default), Fortran column-major. */
    public enum Order { C, FORTRAN }

    /** What a {@code .npy} header says: element type, order, shape, and where the data starts. */
    public record Header(DType dtype, Order order, long[] shape, long dataOffset) {
        public Header {
            shape = shape.clone();
        }

        @Override
        public long[] shape() { return shape.clone(); }

        /** Number of elements. */
        public long elementCount() { return Shapes.elementCount("shape", shape); }

        @Override
        public String toString() {
            return "Npy.Header[" + dtype.descr + ", " + order + ", shape=" + Arrays.toString(shape) + ", data at byte " + dataOffset + "]";
        }
    }

    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final ValueLayout.OfFloat F4 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F8 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort F2 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat NATIVE = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");
    /** NumPy pads the header so the data starts at a multiple of this many bytes. */
    private static final int HEADER_ALIGNMENT = 64;

    // ---------------------------------------------------------------- reading

    /** Reads the header of {@code file}, checking everything {@link #read} would. */
    public static Header header(Path file) throws IOException {
        if (file == null) throw new NullPointerException("file");
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ);
             Arena arena = Arena.ofConfined()) {
            MemorySegment bytes = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena);
            return parseHeader(file, bytes);
        }
    }

    /**
     * A row-major tensor in {@code arena} holding the array in {@code file}: float16 files give an
     * {@link ElementType#F16} tensor, float32 and float64 files a float32 one (float64 elements
     * rounded to the nearest float32); a Fortran-order array is
     * transposed into row-major memory, so {@code get(i, j)} is NumPy's {@code a[i, j]} either way.
     */
    public static Tensor read(Arena arena, Path file) throws IOException {
        if (arena == null) throw new NullPointerException("arena");
        if (file == null) throw new NullPointerException("file");
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ);
             Arena mapping = Arena.ofConfined()) {
            MemorySegment bytes = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), mapping);
            Header h = parseHeader(file, bytes);
            long[] shape = h.shape;
            Tensor t = Tensor.zeros(arena, h.dtype == DType.FLOAT16 ? ElementType.F16 : ElementType.F32, shape);
            MemorySegment dst = t.segment();
            long n = h.elementCount();
            if (h.order == Order.C && h.dtype == DType.FLOAT32) {
                MemorySegment.copy(bytes, F4, h.dataOffset, dst, NATIVE, 0, n);   // swaps bytes on a big-endian machine
                return t;
            }
            // Walk the file sequentially in its own order; the destination index follows row-major strides.
            long[] dstStrides = Shapes.rowMajorStrides(shape);
            long[] index = new long[shape.length];
            long dstIndex = 0;
            for (long i = 0; i < n; i++) {
                if (h.dtype == DType.FLOAT16) {   // copied as bits: no rounding, NaN payloads kept
                    dst.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, dstIndex, bytes.get(F2, h.dataOffset + i * 2));
                    dstIndex = advance(index, shape, dstStrides, dstIndex, h.order);
                    continue;
                }
                float value = h.dtype == DType.FLOAT32
                        ? bytes.get(F4, h.dataOffset + i * 4)
                        : (float) bytes.get(F8, h.dataOffset + i * 8);
                dst.setAtIndex(NATIVE, dstIndex, value);
                dstIndex = advance(index, shape, dstStrides, dstIndex, h.order);
            }
            return t;
        }
    }

    /**
     * The float32 (or float16: an {@link ElementType#F16} tensor) array in {@code file} as a tensor
     * over the file's pages, without copying: a C-order
     * file gives a row-major tensor, a Fortran-order file a column-major one (same {@code get(i, j)}).
     * The mapping is private (copy-on-write): writes to the tensor are never written back to the file,
     * but the file must be opened for writing to map it that way. The mapping lives until {@code arena}
     * closes. Float64 files cannot be used in place; {@link #read} them instead. Needs a
     * little-endian machine.
     */
    public static Tensor map(Arena arena, Path file) throws IOException {
        if (arena == null) throw new NullPointerException("arena");
        if (file == null) throw new NullPointerException("file");
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new IllegalStateException("Npy.map needs a little-endian machine to use '<f4' data in place; use Npy.read");
        }
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            MemorySegment bytes = channel.map(FileChannel.MapMode.PRIVATE, 0, channel.size(), arena);
            Header h = parseHeader(file, bytes);
            if (h.dtype == DType.FLOAT64) {
                throw new IllegalArgumentException(file + ": descr '" + h.dtype.descr + "' cannot be used in place by a float32 tensor; use Npy.read, which rounds to float32");
            }
            long[] shape = h.shape;
            long[] strides = h.order == Order.C ? Shapes.rowMajorStrides(shape) : columnMajorStrides(shape);
            ElementType type = h.dtype == DType.FLOAT16 ? ElementType.F16 : ElementType.F32;
            return Tensor.wrap(bytes.asSlice(h.dataOffset, h.elementCount() * h.dtype.bytes), type, shape, strides);
        }
    }

    // ---------------------------------------------------------------- writing

    /**
     * Writes {@code tensor} (any strides) as a C-order {@code .npy} file of its own element type:
     * float16 for an {@link ElementType#F16} tensor, float32 otherwise (bfloat16 widens exactly).
     */
    public static void write(Path file, Tensor tensor) throws IOException {
        if (tensor == null) throw new NullPointerException("tensor");
        write(file, tensor, tensor.type() == ElementType.F16 ? DType.FLOAT16 : DType.FLOAT32, Order.C);
    }

    /**
     * Writes {@code tensor} (any strides) to {@code file} as a format-1.0 {@code .npy} (2.0 when the
     * header needs more than 65535 bytes) of the given element type and order, replacing the file.
     * Elements are widened exactly or rounded to nearest, ties to even ({@code FLOAT16} of a float32 tensor).
     */
    public static void write(Path file, Tensor tensor, DType dtype, Order order) throws IOException {
        if (file == null) throw new NullPointerException("file");
        if (tensor == null) throw new NullPointerException("tensor");
        if (dtype == null) throw new NullPointerException("dtype");
        if (order == null) throw new NullPointerException("order");
        long[] shape = tensor.shape();
        long n = tensor.elementCount();
        byte[] header = headerBytes(dtype, order, shape);
        long dataBytes;
        try {
            dataBytes = Math.multiplyExact(n, dtype.bytes);
            Math.addExact(header.length, dataBytes);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("tensor " + tensor + " as " + dtype.descr + " needs more bytes than a long can count");
        }
        MemorySegment src = tensor.segment();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.READ, StandardOpenOption.WRITE);
             Arena mapping = Arena.ofConfined()) {
            MemorySegment out = channel.map(FileChannel.MapMode.READ_WRITE, 0, header.length + dataBytes, mapping);
            MemorySegment.copy(header, 0, out, ValueLayout.JAVA_BYTE, 0, header.length);
            long[] strides = tensor.strides();
            long[] index = new long[shape.length];
            long srcIndex = tensor.offset();
            long at = header.length;
            ElementType type = tensor.type();
            for (long i = 0; i < n; i++) {
                float value = type.get(src, srcIndex);
                if (dtype == DType.FLOAT32) out.set(F4, at, value);
                else if (dtype == DType.FLOAT16) out.set(F2, at, Float.floatToFloat16(value));
                else out.set(F8, at, value);
                at += dtype.bytes;
                srcIndex = advance(index, shape, strides, srcIndex, order);
            }
            out.force();
        }
    }

    // ---------------------------------------------------------------- internals

    /**
     * Steps {@code index} to the next element in {@code order} (C: last dimension fastest, Fortran:
     * first) and returns {@code position} moved accordingly along {@code strides}.
     */
    private static long advance(long[] index, long[] shape, long[] strides, long position, Order order) {
        int rank = shape.length;
        for (int k = 0; k < rank; k++) {
            int d = order == Order.C ? rank - 1 - k : k;
            if (++index[d] < shape[d]) return position + strides[d];
            position -= (shape[d] - 1) * strides[d];
            index[d] = 0;
        }
        return position;   // wrapped past the last element
    }

    static long[] columnMajorStrides(long[] shape) {
        long[] strides = new long[shape.length];
        long s = 1;
        for (int d = 0; d < shape.length; d++) {
            strides[d] = s;
            s *= shape[d];
        }
        return strides;
    }

    private static Header parseHeader(Path file, MemorySegment bytes) {
        long size = bytes.byteSize();
        if (size < 10) throw new IllegalArgumentException(file + ": " + size + " bytes is too short for a .npy file");
        for (int i = 0; i < MAGIC.length; i++) {
            if (bytes.get(ValueLayout.JAVA_BYTE, i) != MAGIC[i]) {
                throw new IllegalArgumentException(file + ": not a .npy file (no \\x93NUMPY magic at the start)");
            }
        }
        int major = Byte.toUnsignedInt(bytes.get(ValueLayout.JAVA_BYTE, 6));
        long headerLength;
        long headerStart;
        if (major == 1) {
            headerLength = Short.toUnsignedInt(bytes.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 8));
            headerStart = 10;
        } else if (major == 2 || major == 3) {
            if (size < 12) throw new IllegalArgumentException(file + ": " + size + " bytes is too short for a version " + major + " .npy file");
            headerLength = Integer.toUnsignedLong(bytes.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 8));
            headerStart = 12;
        } else {
            throw new IllegalArgumentException(file + ": .npy format version " + major + " is not supported (1, 2 and 3 are)");
        }
        long dataOffset = headerStart + headerLength;
        if (dataOffset > size) {
            throw new IllegalArgumentException(file + ": header of " + headerLength + " bytes runs past the end of the file (" + size + " bytes)");
        }
        byte[] text = bytes.asSlice(headerStart, headerLength).toArray(ValueLayout.JAVA_BYTE);
        String dict = new String(text, major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1).strip();
        if (!dict.startsWith("{") || !dict.endsWith("}")) {
            throw new IllegalArgumentException(file + ": header is not a dictionary literal: " + dict);
        }
        String descr = group(file, DESCR, dict, "descr");
        DType dtype = switch (descr) {
            case "<f4" -> DType.FLOAT32;
            case "<f8" -> DType.FLOAT64;
            case "<f2" -> DType.FLOAT16;
            case ">f4", ">f8", ">f2" -> throw new IllegalArgumentException(file + ": descr '" + descr
                    + "' is big-endian; only little-endian '<f4', '<f8' and '<f2' are supported (numpy: a.astype('<f4'))");
            default -> throw new IllegalArgumentException(file + ": descr '" + descr + "' is not supported; only '<f4' (float32), '<f8' (float64) and '<f2' (float16) are");
        };
        Order order = group(file, FORTRAN, dict, "fortran_order").equals("True") ? Order.FORTRAN : Order.C;
        String dims = group(file, SHAPE, dict, "shape").strip();
        if (dims.isEmpty()) {
            throw new IllegalArgumentException(file + ": shape () is a 0-d array; a tensor needs at least one dimension (numpy: a.reshape(1))");
        }
        String[] parts = dims.split(",", -1);
        int rank = parts[parts.length - 1].isBlank() ? parts.length - 1 : parts.length;
        long[] shape = new long[rank];
        for (int d = 0; d < rank; d++) {
            try {
                shape[d] = Long.parseLong(parts[d].strip());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(file + ": shape (" + dims + ") has a dimension '" + parts[d].strip() + "' that is not an integer");
            }
            if (shape[d] < 1) {
                throw new IllegalArgumentException(file + ": shape (" + dims + ") has dimension " + d + " = " + shape[d] + "; a tensor needs every dimension >= 1");
            }
        }
        long count = Shapes.elementCount(file + ": shape", shape);
        long dataBytes;
        try {
            dataBytes = Math.multiplyExact(count, dtype.bytes);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(file + ": shape (" + dims + ") needs more bytes than a long can count");
        }
        if (size - dataOffset != dataBytes) {
            throw new IllegalArgumentException(file + ": shape (" + dims + ") of " + descr + " needs " + dataBytes
                    + " data bytes but the file has " + (size - dataOffset) + " after its header" + (size - dataOffset < dataBytes ? " (truncated?)" : ""));
        }
        return new Header(dtype, order, shape, dataOffset);
    }

    private static String group(Path file, Pattern pattern, String dict, String key) {
        Matcher m = pattern.matcher(dict);
        if (!m.find()) throw new IllegalArgumentException(file + ": header has no valid '" + key + "' entry: " + dict);
        return m.group(1);
    }

    private static byte[] headerBytes(DType dtype, Order order, long[] shape) {
        StringBuilder dims = new StringBuilder();
        for (int d = 0; d < shape.length; d++) {
            if (d > 0) dims.append(", ");
            dims.append(shape[d]);
        }
        if (shape.length == 1) dims.append(',');
        String dict = "{'descr': '" + dtype.descr + "', 'fortran_order': " + (order == Order.FORTRAN ? "True" : "False")
                + ", 'shape': (" + dims + "), }";
        byte[] text = dict.getBytes(StandardCharsets.ISO_8859_1);
        int prefix = 10;
        int major = 1;
        if (text.length + 1 + prefix + HEADER_ALIGNMENT > 0xFFFF) {
            prefix = 12;
            major = 2;
        }
        int total = Math.ceilDiv(prefix + text.length + 1, HEADER_ALIGNMENT) * HEADER_ALIGNMENT;
        int headerLength = total - prefix;
        byte[] out = new byte[total];
        System.arraycopy(MAGIC, 0, out, 0, MAGIC.length);
        out[6] = (byte) major;
        out[7] = 0;
        if (major == 1) {
            out[8] = (byte) headerLength;
            out[9] = (byte) (headerLength >>> 8);
        } else {
            for (int b = 0; b < 4; b++) out[8 + b] = (byte) (headerLength >>> (8 * b));
        }
        System.arraycopy(text, 0, out, prefix, text.length);
        Arrays.fill(out, prefix + text.length, total - 1, (byte) ' ');
        out[total - 1] = '\n';
        return out;
    }
}
