package io.tessera.examples;

import io.tessera.attention.Attention;
import io.tessera.pattern.Pattern;
import io.tessera.tensor.Npy;
import io.tessera.tensor.Tensor;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Data that lives elsewhere, used without copying:
 * <ol>
 *   <li>a direct {@link FloatBuffer} (what many JVM libraries hand out) wrapped as q, and another
 *       wrapped as the output, which attention then writes in place;</li>
 *   <li>a {@link MemorySegment} owned by "another library", holding keys in [batch, seq, heads, dim]
 *       order, seen as [batch, heads, seq, dim] through strides;</li>
 *   <li>a {@code .npy} file as Python writes them, memory-mapped as v, and the output saved for
 *       {@code numpy.load}.</li>
 * </ol>
 * DJL NDArrays and ONNX Runtime OnnxTensors expose direct buffers too: see the bench module's
 * {@code io.tessera.bench.peers.InteropExamples} (built with the peers profile, which has them).
 */
public final class Interop {
    private Interop() {}

    public static void main(String[] args) throws IOException {
        Path dir = Files.createTempDirectory("tessera-interop");
        run(System.out, args.length > 0 ? Integer.parseInt(args[0]) : 1024, dir);
    }

    /** Runs at sequence length {@code n}, writing its files to {@code dir}; returns the output read back from the saved {@code .npy}. */
    public static float[] run(PrintStream out, int n, Path dir) throws IOException {
        int heads = 4, dim = 32;
        long[] bhnd = {1, heads, n, dim};
        int count = heads * n * dim;
        try (Arena arena = Arena.ofShared()) {
            // 1. Direct FloatBuffers, native byte order (a ByteBuffer view is big-endian unless told otherwise).
            FloatBuffer qBuffer = ByteBuffer.allocateDirect(count * Float.BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
            FloatBuffer outBuffer = ByteBuffer.allocateDirect(count * Float.BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
            qBuffer.put(Tensor.randomNormal(arena, 1, 1f, bhnd).toArray()).flip();
            Tensor q = Tensor.wrap(qBuffer, bhnd);
            Tensor output = Tensor.wrap(outBuffer, bhnd);

            // 2. Keys in someone else's segment, laid out [batch, seq, heads, dim]: strides give the [B, H, N, D] view.
            MemorySegment foreign = arena.allocate((long) count * Float.BYTES, 64);
            Tensor kBnhd = Tensor.wrap(foreign, 1, n, heads, dim);
            kBnhd.copyFrom(Tensor.randomNormal(arena, 2, 1f, bhnd).transpose(1, 2));   // fill it as that library would
            Tensor k = Tensor.wrap(foreign, bhnd, new long[] {(long) n * heads * dim, dim, (long) heads * dim, 1});

            // 3. Values from a .npy file (written here; numpy.save writes the same format), mapped in place.
            Path vFile = dir.resolve("v.npy");
            Npy.write(vFile, Tensor.randomNormal(arena, 3, 1f, bhnd));
            Tensor v = Npy.map(arena, vFile);

            Attention.sparse(Pattern.causal()).forward(q, k, v, output);

            out.println("q wraps the FloatBuffer in place: " + (q.segment().address() == MemorySegment.ofBuffer(qBuffer).address()));
            out.println("k is a strided view of the foreign segment: strides " + Arrays.toString(k.strides()) + ", contiguous " + k.isContiguous());
            out.println("v is mapped from " + vFile.getFileName() + ": " + Npy.header(vFile));
            out.println("the output went straight into outBuffer: out[0,0,0,0] = " + outBuffer.get(0) + " = " + output.get(0, 0, 0, 0));
            out.println("wrapped tensors have no device header slot: " + !output.hasHeaderSlot()
                    + " (a TornadoVM backend needs output.contiguous(arena) first)");

            Path outFile = dir.resolve("out.npy");
            Npy.write(outFile, output);
            out.println("saved " + outFile.getFileName() + " for numpy.load: " + Npy.header(outFile));
            return Npy.read(arena, outFile).toArray();
        }
    }
}
