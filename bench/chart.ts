/**
 * A small horizontal bar chart rendered to PNG with node:zlib only: an RGB canvas, a 5x7 bitmap
 * font, one panel per metric, one bar per target (median) with a thin line for the min–max spread.
 */
import { crc32, deflateSync } from 'node:zlib';
import { glyph, GLYPH_WIDTH } from './font.ts';

type Rgb = readonly [number, number, number];

export interface Bar {
  label: string;
  median: number;
  min: number;
  max: number;
}

export interface Panel {
  title: string;
  unit: string;
  bars: Bar[];
}

const WIDTH = 1000;
const SCALE = 2;
const ROW = 26;
const LABEL_W = 290;
const PAD = 16;
const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [30, 30, 30];
const GRID: Rgb = [225, 225, 225];
const PALETTE: readonly Rgb[] = [
  [120, 120, 120],
  [31, 119, 180],
  [120, 180, 230],
  [255, 127, 14],
  [148, 103, 189],
  [44, 160, 44],
  [214, 39, 40],
];

class Canvas {
  readonly pixels: Buffer;
  readonly width: number;
  readonly height: number;

  constructor(width: number, height: number) {
    this.width = width;
    this.height = height;
    this.pixels = Buffer.alloc(width * height * 3, 255);
  }

  rect(x: number, y: number, w: number, h: number, color: Rgb): void {
    const x0 = Math.max(0, Math.round(x));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y0 = Math.max(0, Math.round(y));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let yy = y0; yy < y1; yy++) {
      for (let xx = x0; xx < x1; xx++) this.pixels.set(color, (yy * this.width + xx) * 3);
    }
  }

  text(x: number, y: number, s: string, color: Rgb = INK): void {
    let cx = x;
    for (const ch of s) {
      glyph(ch).forEach((row, gy) => {
        row.forEach((ink, gx) => {
          if (ink) this.rect(cx + gx * SCALE, y + gy * SCALE, SCALE, SCALE, color);
        });
      });
      cx += (GLYPH_WIDTH + 1) * SCALE;
    }
  }

  png(): Buffer {
    const raw = Buffer.alloc((this.width * 3 + 1) * this.height);
    for (let y = 0; y < this.height; y++) {
      const row = y * (this.width * 3 + 1);
      raw[row] = 0;
      this.pixels.copy(raw, row + 1, y * this.width * 3, (y + 1) * this.width * 3);
    }
    const header = Buffer.alloc(13);
    header.writeUInt32BE(this.width, 0);
    header.writeUInt32BE(this.height, 4);
    header.set([8, 2, 0, 0, 0], 8);
    const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    return Buffer.concat([
      signature,
      chunk('IHDR', header),
      chunk('IDAT', deflateSync(raw)),
      chunk('IEND', Buffer.alloc(0)),
    ]);
  }
}

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function formatValue(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function panelHeight(p: Panel): number {
  return 40 + Math.max(1, p.bars.length) * ROW + PAD;
}

function drawPanel(c: Canvas, p: Panel, top: number, colors: Map<string, Rgb>): void {
  c.text(PAD, top + 8, `${p.title} (${p.unit})`);
  const plotX = PAD + LABEL_W;
  const plotW = WIDTH - plotX - 130;
  const finite = p.bars.flatMap((b) => [b.median, b.max]).filter((v) => Number.isFinite(v));
  const maxV = Math.max(1e-9, ...finite);
  const minV = Math.min(0, ...finite);
  const scale = plotW / (maxV - minV);
  const zeroX = plotX - minV * scale;
  c.rect(zeroX, top + 34, 1, p.bars.length * ROW, GRID);
  p.bars.forEach((b, i) => {
    const y = top + 36 + i * ROW;
    c.text(PAD, y + 3, b.label);
    if (!Number.isFinite(b.median)) {
      c.text(plotX + 4, y + 3, 'n/a');
      return;
    }
    const x0 = Math.min(zeroX, zeroX + b.median * scale);
    c.rect(x0, y, Math.max(1, Math.abs(b.median * scale)), ROW - 8, colors.get(b.label) ?? INK);
    if (Number.isFinite(b.min) && Number.isFinite(b.max) && b.max > b.min) {
      c.rect(zeroX + b.min * scale, y + (ROW - 8) / 2 - 1, Math.max(1, (b.max - b.min) * scale), 2, INK);
    }
    const right = Number.isFinite(b.max) ? Math.max(b.median, b.max) : b.median;
    c.text(Math.max(zeroX, zeroX + right * scale) + 8, y + 3, formatValue(b.median));
  });
}

/** Renders the title lines and the panels stacked vertically; colours follow the order of `targets`. */
export function renderChart(
  title: readonly string[],
  panels: readonly Panel[],
  targets: readonly string[],
): Buffer {
  const colors = new Map(targets.map((t, i): [string, Rgb] => [t, PALETTE[i % PALETTE.length] ?? INK]));
  const titleHeight = 16 + title.length * 22;
  const height = titleHeight + panels.reduce((h, p) => h + panelHeight(p), 0);
  const c = new Canvas(WIDTH, height);
  c.rect(0, 0, WIDTH, height, WHITE);
  title.forEach((line, i) => {
    c.text(PAD, 12 + i * 22, line);
  });
  let top = titleHeight;
  for (const p of panels) {
    c.rect(PAD, top, WIDTH - 2 * PAD, 1, GRID);
    drawPanel(c, p, top + 4, colors);
    top += panelHeight(p);
  }
  return c.png();
}
