package io.tessera.bench.report;

import io.tessera.layout.BlockLayout;
import io.tessera.layout.TileKind;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import javax.imageio.ImageIO;

/**
 * PNG pictures of block layouts for reports: one pixel block per tile (dark = FULL, mid = PARTIAL,
 * white = absent), query blocks down, key blocks across, downsampled to at most {@code maxSide}
 * pixels (a cell then shows its densest tile).
 */
public final class LayoutImages {
    private LayoutImages() {}

    private static final int FULL_RGB = 0x1f3b73, PARTIAL_RGB = 0x7fa7e0, EMPTY_RGB = 0xffffff;

    static BufferedImage render(BlockLayout layout, int maxSide) {
        if (maxSide < 1) throw new IllegalArgumentException("maxSide must be >= 1, got " + maxSide);
        int rowsPerCell = BlockLayout.ceilDiv(layout.qBlocks(), maxSide), colsPerCell = BlockLayout.ceilDiv(layout.kvBlocks(), maxSide);
        int h = BlockLayout.ceilDiv(layout.qBlocks(), rowsPerCell), w = BlockLayout.ceilDiv(layout.kvBlocks(), colsPerCell);
        int pixel = Math.max(1, maxSide / Math.max(h, w));   // enlarge small maps so they stay visible
        BufferedImage image = new BufferedImage(w * pixel, h * pixel, BufferedImage.TYPE_INT_RGB);
        byte[][] cell = new byte[h][w];
        for (int r = 0; r < layout.qBlocks(); r++) {
            for (int t = layout.rowOffsets()[r]; t < layout.rowOffsets()[r + 1]; t++) {
                int cr = r / rowsPerCell, cc = layout.colIndices()[t] / colsPerCell;
                byte k = layout.kinds()[t];
                if (cell[cr][cc] != TileKind.FULL.code()) cell[cr][cc] = k;
            }
        }
        for (int y = 0; y < h * pixel; y++) {
            for (int x = 0; x < w * pixel; x++) {
                byte k = cell[y / pixel][x / pixel];
                image.setRGB(x, y, k == TileKind.FULL.code() ? FULL_RGB : k == TileKind.PARTIAL.code() ? PARTIAL_RGB : EMPTY_RGB);
            }
        }
        return image;
    }

    /** Writes the picture of {@code layout}, at most {@code maxSide} pixels a side, as a PNG file. */
    public static void writePng(BlockLayout layout, Path file, int maxSide) {
        try {
            if (!ImageIO.write(render(layout, maxSide), "png", file.toFile())) throw new IOException("no PNG writer available");
        } catch (IOException e) {
            throw new UncheckedIOException("could not write layout picture to " + file, e);
        }
    }
}
