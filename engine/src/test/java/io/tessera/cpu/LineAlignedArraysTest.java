package io.tessera.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.MemorySegment;
import java.util.Locale;
import org.junit.jupiter.api.Test;

/**
 * Where the kernels' scratch arrays' cache lines begin: the tests run with
 * {@code --enable-native-access} (the build's argLine), so on Linux the address query is on and
 * every claim below is checked, not skipped.
 */
class LineAlignedArraysTest {
    private static boolean linux() {
        return System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux");
    }

    @Test
    void theAddressQueryIsOnWhereNativeCallsAreAllowed() {
        assumeTrue(linux(), "the build's JVMs allow native access; other systems may lack memmove's symbol under that name");
        assertThat(LineAlignedArrays.describe()).isEqualTo("on");
        assertThat(LineAlignedArrays.available()).isTrue();
    }

    @Test
    void anArraysLineOffsetIsAFloatBoundaryWithinALine() {
        assumeTrue(LineAlignedArrays.available());
        for (int length : new int[] {0, 1, 3, 16, 1000}) {
            int offset = LineAlignedArrays.lineOffset(MemorySegment.ofArray(new float[length]));
            assertThat(offset).as("length %d", length).isBetween(0, LineAlignedArrays.LINE - 1);
            assertThat(offset % Float.BYTES).isZero();
        }
    }

    /**
     * Skipping floatsToLine floats lands on a line: checked against the address itself right after
     * (a collection in between could move the array; then the claim is checked on the next one).
     */
    @Test
    void skippingTheFloatsToTheLineLandsOnALine() {
        assumeTrue(LineAlignedArrays.available());
        int[] offsetsSeen = new int[LineAlignedArrays.LINE];
        for (int i = 0; i < 400; i++) {
            MemorySegment a = MemorySegment.ofArray(new float[1 + i % 37 + LineAlignedArrays.SLACK_FLOATS]);
            int skip = LineAlignedArrays.floatsToLine(a), offset = LineAlignedArrays.lineOffset(a);
            assertThat(skip).isBetween(0, LineAlignedArrays.SLACK_FLOATS - 1);
            if (LineAlignedArrays.floatsToLine(a) != skip) continue;   // moved meanwhile
            assertThat((offset + skip * Float.BYTES) % LineAlignedArrays.LINE).as("array %d at offset %d", i, offset).isZero();
            offsetsSeen[offset]++;
        }
        // Arrays land at several offsets (which is why the skip exists), and the skip covers each.
        int distinct = 0;
        for (int count : offsetsSeen) if (count > 0) distinct++;
        assertThat(distinct).isGreaterThan(1);
    }
}
