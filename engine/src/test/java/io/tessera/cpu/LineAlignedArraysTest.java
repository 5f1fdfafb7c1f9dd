package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Locale;
import org.junit.jupiter.api.Test;

/**
 * The kernels' scratch arrays on cache lines: the tests run with {@code --enable-native-access}
 * (the build's argLine), so on Linux the placement is on and every claim below is checked, not
 * skipped.
 */
class LineAlignedArraysTest {
    private static boolean linux() {
        return System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux");
    }

    @Test
    void placementIsOnWhereNativeCallsAreAllowed() {
        assumeTrue(linux(), "the build's JVMs allow native access; other systems may lack memmove's symbol under that name");
        assertThat(LineAlignedArrays.describe()).isEqualTo("on");
        assertThat(LineAlignedArrays.available()).isTrue();
    }

    @Test
    void anArraysLineOffsetIsAFloatBoundaryWithinALine() {
        assumeTrue(LineAlignedArrays.available());
        for (int length : new int[] {1, 3, 16, 1000}) {
            int offset = LineAlignedArrays.lineOffset(new float[length]);
            assertThat(offset).as("length %d", length).isBetween(0, LineAlignedArrays.LINE - 1);
            assertThat(offset % Float.BYTES).isZero();
        }
    }

    /** Whether this JVM's arrays can be placed at all: elements 8-byte aligned (not so with compact object headers). */
    private static boolean placeable() {
        return LineAlignedArrays.available() && LineAlignedArrays.lineOffset(new float[1]) % 8 == 0;
    }

    /**
     * Placement is best effort (an allocation outside the thread's buffer can land anywhere; the
     * kernels check again at their next block and re-place), so this asks for most, not all: on
     * the build's JVM 94–100 % of placements land on a line at every length here.
     */
    @Test
    void newArraysMostlyStartOnALineAndAreZeroed() {
        assumeTrue(placeable());
        for (int length : new int[] {1, 7, 16, 33, 100, 1000, 2240, 4096, 8192, 12_345, LineAlignedArrays.MAX_FLOATS}) {
            int placed = 0, rounds = 50;
            for (int round = 0; round < rounds; round++) {
                float[] a = LineAlignedArrays.floats(length);
                assertThat(a).hasSize(length);
                for (float x : a) assertThat(x).isZero();
                if (LineAlignedArrays.lineOffset(a) == 0) placed++;
            }
            assertThat(placed).as("placements on a line at length %d", length).isGreaterThanOrEqualTo(rounds * 4 / 5);
        }
    }

    @Test
    void aPlainArrayOffALineIsReportedAndAPlacedOneIsNot() {
        assumeTrue(placeable());
        float[] off = null;
        for (int i = 0; i < 64 && off == null; i++) {   // 7 placements of 8 are off a line
            float[] a = new float[256 + i];
            if (LineAlignedArrays.lineOffset(a) != 0) off = a;
        }
        assertThat(off).as("64 plain arrays, none off a line").isNotNull();
        assertThat(LineAlignedArrays.misaligned(off) || LineAlignedArrays.lineOffset(off) == 0).isTrue();
        assertThat(LineAlignedArrays.misaligned(LineAlignedArrays.floats(off.length))).isFalse();
        assertThat(LineAlignedArrays.misaligned(new float[0])).isFalse();
    }

    @Test
    void arraysAboveTheLimitAreLeftWhereTheyLand() {
        float[] large = new float[LineAlignedArrays.MAX_FLOATS + 1];
        assertThat(LineAlignedArrays.misaligned(large)).isFalse();
        assertThat(LineAlignedArrays.floats(LineAlignedArrays.MAX_FLOATS + 1)).hasSize(LineAlignedArrays.MAX_FLOATS + 1);
    }
}
