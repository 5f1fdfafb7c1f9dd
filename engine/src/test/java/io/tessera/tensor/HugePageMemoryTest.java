package io.tessera.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Large tensors on huge pages: the tests run with {@code --enable-native-access} (the build's
 * argLine), so on Linux the mapping path is on and each claim is checked against the kernel's own
 * account of the process's memory ({@code /proc/self/maps} and {@code smaps}), not skipped.
 */
class HugePageMemoryTest {
    private static final long LARGE = HugePageMemory.THRESHOLD_BYTES / Float.BYTES + 1000;   // floats: just over the threshold

    private static boolean linux() {
        return System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux");
    }

    @Test
    void theMappingPathIsOnWhereNativeCallsAreAllowed() {
        assumeTrue(linux(), "the build's JVMs allow native access; mmap is looked up on Linux only");
        assertThat(HugePageMemory.describe()).isEqualTo("on");
    }

    @Test
    void aLargeTensorIsZeroedStartsOnAHugePageAndIsAskedToBeBackedByThem() throws IOException {
        assumeTrue(HugePageMemory.describe().equals("on"));
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.zeros(arena, 1, LARGE);
            MemorySegment data = t.segment();
            long start = data.address() - Tensor.ALIGNMENT;
            assertThat(start % HugePageMemory.HUGE_PAGE).isZero();
            assertThat(data.byteSize()).isEqualTo(LARGE * Float.BYTES);
            for (long i = 0; i < LARGE; i += 997) assertThat(data.getAtIndex(ValueLayout.JAVA_FLOAT, i)).isZero();
            assertThat(data.getAtIndex(ValueLayout.JAVA_FLOAT, LARGE - 1)).isZero();
            t.fill(2.5f);
            assertThat(data.getAtIndex(ValueLayout.JAVA_FLOAT, LARGE - 1)).isEqualTo(2.5f);
            // The region is one mapping of its own, marked for huge pages (smaps says whether the kernel may back it
            // with them; whether it found free 2 MB pages at that moment is the kernel's business, not a result).
            List<String> region = smapsRegion(start);
            assertThat(region).as("a mapping holding the allocation").isNotEmpty();
            assertThat(region).anyMatch(line -> line.startsWith("VmFlags:") && line.contains(" hg"));   // madvise(MADV_HUGEPAGE) took
            if (!transparentHugePagesDisabled()) assertThat(region).anyMatch(line -> line.matches("THPeligible:\\s+1"));
        }
    }

    @Test
    void closingTheArenaUnmapsTheMemory() throws IOException {
        assumeTrue(HugePageMemory.describe().equals("on"));
        long start;
        Tensor t;
        try (Arena arena = Arena.ofShared()) {
            t = Tensor.zeros(arena, ElementType.BF16, 1, 2 * LARGE);
            start = t.segment().address() - Tensor.ALIGNMENT;
            assertThat(mapped(start)).isTrue();
        }
        assertThat(mapped(start)).as("munmap ran at close").isFalse();
        assertThatThrownBy(() -> t.get(0, 0)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void aClosedArenaOrAnotherThreadsConfinedArenaIsRefusedAsTheArenaWould() throws Exception {
        assumeTrue(HugePageMemory.describe().equals("on"));
        Arena closed = Arena.ofConfined();
        closed.close();
        assertThatThrownBy(() -> Tensor.zeros(closed, 1, LARGE)).isInstanceOf(IllegalStateException.class);
        try (Arena confined = Arena.ofConfined()) {
            Throwable[] thrown = new Throwable[1];
            Thread other = new Thread(() -> {
                try {
                    Tensor.zeros(confined, 1, LARGE);
                } catch (Throwable e) {
                    thrown[0] = e;
                }
            });
            other.start();
            other.join();
            assertThat(thrown[0]).isInstanceOf(WrongThreadException.class);
        }
    }

    /** An arena a user implemented keeps allocating its own memory (its policy: pools, budgets, accounting). */
    @Test
    void anArenaTheJdkDidNotMakeAllocatesItself() {
        AtomicInteger calls = new AtomicInteger();
        try (Arena inner = Arena.ofConfined()) {
            Arena counting = new Arena() {
                @Override
                public MemorySegment allocate(long byteSize, long byteAlignment) {
                    calls.incrementAndGet();
                    return inner.allocate(byteSize, byteAlignment);
                }

                @Override
                public MemorySegment.Scope scope() { return inner.scope(); }

                @Override
                public void close() { inner.close(); }
            };
            Tensor t = Tensor.zeros(counting, 1, LARGE);
            assertThat(calls.get()).isEqualTo(1);
            assertThat(t.get(0, LARGE - 1)).isZero();
        }
    }

    private static boolean transparentHugePagesDisabled() throws IOException {
        Path enabled = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
        return !Files.exists(enabled) || Files.readString(enabled).contains("[never]");
    }

    /** Whether a mapping of the process holds {@code address}. */
    private static boolean mapped(long address) throws IOException {
        return !smapsRegion(address).isEmpty();
    }

    /** The smaps lines of the mapping that holds {@code address}, empty when none does. */
    private static List<String> smapsRegion(long address) throws IOException {
        List<String> lines = Files.readAllLines(Path.of("/proc/self/smaps"));
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (!line.matches("^[0-9a-f]+-[0-9a-f]+ .*")) continue;
            String[] range = line.substring(0, line.indexOf(' ')).split("-");
            long from = Long.parseUnsignedLong(range[0], 16), to = Long.parseUnsignedLong(range[1], 16);
            if (address < from || address >= to) continue;
            int end = i + 1;
            while (end < lines.size() && !lines.get(end).matches("^[0-9a-f]+-[0-9a-f]+ .*")) end++;
            return lines.subList(i, end);
        }
        return List.of();
    }
}
