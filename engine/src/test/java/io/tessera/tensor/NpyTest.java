package io.tessera.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The files under src/test/resources/io/tessera/tensor were written by NumPy 2.4 ({@code np.save}) from
 * {@code a = np.arange(24).reshape(2, 3, 4) * 0.25 - 1}: as float32 in C and Fortran order, as
 * float64 plus 1e-9 (a fraction float32 cannot hold) in both orders, and files that must be refused.
 */
class NpyTest {
    @TempDir Path dir;

    private Path resource(String name) throws IOException {
        Path file = dir.resolve(name);
        try (InputStream in = NpyTest.class.getResourceAsStream(name)) {
            Files.copy(in, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        return file;
    }

    private static float expected(long i, long j, long k, double plus) { return (float) ((i * 12 + j * 4 + k) * 0.25 - 1 + plus); }

    private static void assertIsA(Tensor t) { assertIsA(t, 0); }

    /** Every element is a[i, j, k] + plus rounded to float32. */
    private static void assertIsA(Tensor t, double plus) {
        assertThat(t.shape()).containsExactly(2, 3, 4);
        for (long i = 0; i < 2; i++) for (long j = 0; j < 3; j++) for (long k = 0; k < 4; k++) {
            assertThat(t.get(i, j, k)).as("a[%d, %d, %d]", i, j, k).isEqualTo(expected(i, j, k, plus));
        }
    }

    @Test
    void readsNumPyFilesInEitherOrderAndType() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            for (String name : new String[] {"c_f4.npy", "fortran_f4.npy", "c_f8.npy", "fortran_f8.npy"}) {
                Tensor t = Npy.read(arena, resource(name));
                assertThat(t.isContiguous()).isTrue();
                assertIsA(t, name.endsWith("f8.npy") ? 1e-9 : 0);   // float64 rounded to the nearest float32
            }
            assertThat(Npy.header(resource("fortran_f8.npy")).toString())
                    .isEqualTo("Npy.Header[<f8, FORTRAN, shape=[2, 3, 4], data at byte 128]");
            assertThat(Npy.read(arena, resource("vector_f4.npy")).toArray()).containsExactly(1f, 2f, 3f);
        }
    }

    @Test
    void mapsFloat32FilesInPlaceWithoutWritingBack() throws IOException {
        Path c = resource("c_f4.npy"), f = resource("fortran_f4.npy");
        byte[] before = Files.readAllBytes(f);
        try (Arena arena = Arena.ofConfined()) {
            Tensor mappedC = Npy.map(arena, c);
            assertIsA(mappedC);
            assertThat(mappedC.hasHeaderSlot()).isFalse();
            Tensor mappedF = Npy.map(arena, f);
            assertThat(mappedF.strides()).containsExactly(1, 2, 6);
            assertIsA(mappedF);
            mappedF.set(99f, 1, 2, 3);
            assertThat(mappedF.get(1, 2, 3)).isEqualTo(99f);
            assertThatThrownBy(() -> Npy.map(arena, resource("c_f8.npy")))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("'<f8' cannot be used in place").hasMessageContaining("Npy.read");
        }
        assertThat(Files.readAllBytes(f)).isEqualTo(before);
    }

    @Test
    void writesEveryTypeAndOrderFromAnyStrides() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Npy.read(arena, resource("c_f4.npy"));
            Tensor strided = a.transpose(0, 2).contiguous(arena).transpose(0, 2);   // same values, other strides
            assertThat(strided.isContiguous()).isFalse();
            for (Npy.DType dtype : Npy.DType.values()) {
                for (Npy.Order order : Npy.Order.values()) {
                    Path file = dir.resolve("out_" + dtype + "_" + order + ".npy");
                    Npy.write(file, strided, dtype, order);
                    Npy.Header h = Npy.header(file);
                    assertThat(h.dtype()).isEqualTo(dtype);
                    assertThat(h.order()).isEqualTo(order);
                    assertThat(h.dataOffset() % 64).isZero();
                    assertIsA(Npy.read(arena, file));
                }
            }
            // C-order float32 from a contiguous tensor: the data bytes equal NumPy's own file's
            Path mine = dir.resolve("mine.npy");
            Npy.write(mine, a);
            byte[] ours = Files.readAllBytes(mine), numpy = Files.readAllBytes(resource("c_f4.npy"));
            assertThat(java.util.Arrays.copyOfRange(ours, (int) Npy.header(mine).dataOffset(), ours.length))
                    .isEqualTo(java.util.Arrays.copyOfRange(numpy, 128, numpy.length));
        }
    }

    @Test
    void refusesWhatItCannotRepresentNamingTheField() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            assertThatThrownBy(() -> Npy.read(arena, resource("big_endian_f4.npy")))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("descr '>f4' is big-endian");
            assertThatThrownBy(() -> Npy.read(arena, resource("int32.npy")))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("descr '<i4' is not supported");
            assertThatThrownBy(() -> Npy.read(arena, resource("scalar_f4.npy")))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("0-d array");
            Path truncated = dir.resolve("truncated.npy");
            byte[] full = Files.readAllBytes(resource("c_f4.npy"));
            Files.write(truncated, java.util.Arrays.copyOf(full, full.length - 4));
            assertThatThrownBy(() -> Npy.read(arena, truncated))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("needs 96 data bytes but the file has 92").hasMessageContaining("truncated");
            Path notNpy = dir.resolve("text.npy");
            Files.writeString(notNpy, "hello, world");
            assertThatThrownBy(() -> Npy.read(arena, notNpy))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a .npy file");
        }
    }
}
