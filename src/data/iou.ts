// The reference's box overlap (the `iou` of refer_expression_dataset.py, the pointing
// datasets and concept_cap_dataset.py): pixel boxes x1, y1, x2, y2 with the "+1"
// convention (a box from x1 to x2 covers x2 - x1 + 1 pixels), intersections clamped at 0.
//
// Every step is one float32 operation in the reference's order, as torch (`.float()`
// tensors) and numpy (float32 arrays with Python-int constants) compute it, so results are
// bit-exact: Math.fround after each +, -, *, / of float32 operands equals the float32 op.
const f32 = Math.fround;

/** `(x2 - x1 + 1) * (y2 - y1 + 1)` of the box starting at `offset`, in float32. */
function boxArea(boxes: ArrayLike<number>, offset: number): number {
  const width = f32(f32(f32(boxes[offset + 2]!) - f32(boxes[offset]!)) + 1);
  const height = f32(f32(f32(boxes[offset + 3]!) - f32(boxes[offset + 1]!)) + 1);
  return f32(width * height);
}

/**
 * Overlaps [N, K] (row-major) of N anchor boxes with K query boxes. Both are row-major
 * rows whose first four columns are x1, y1, x2, y2; `anchorWidth` / `queryWidth` are the
 * row lengths (5 for the readers' `boxes_ori` rows, whose area column is ignored, as the
 * reference's `[:, :4]`). Inputs are rounded to float32 first (the reference's `.float()`).
 */
export function iou(
  anchors: ArrayLike<number>,
  queries: ArrayLike<number>,
  anchorWidth = 4,
  queryWidth = 4,
): Float32Array {
  if (anchorWidth < 4 || queryWidth < 4)
    throw new RangeError(`box rows need at least 4 columns, got ${anchorWidth} and ${queryWidth}`);
  if (anchors.length % anchorWidth !== 0 || queries.length % queryWidth !== 0) {
    throw new RangeError(
      `box arrays of ${anchors.length} and ${queries.length} values are not whole rows of ${anchorWidth} and ${queryWidth}`,
    );
  }
  const n = anchors.length / anchorWidth;
  const k = queries.length / queryWidth;
  const queryAreas = Array.from({ length: k }, (_, j) => boxArea(queries, j * queryWidth)); // [K]
  const overlaps = new Float32Array(n * k); // [N, K]
  for (let i = 0; i < n; i++) {
    const a = i * anchorWidth;
    const anchorArea = boxArea(anchors, a);
    for (let j = 0; j < k; j++) {
      const q = j * queryWidth;
      // Math.min / Math.max propagate NaN as torch.min / np.minimum do.
      let iw = f32(
        f32(Math.min(f32(anchors[a + 2]!), f32(queries[q + 2]!)) - Math.max(f32(anchors[a]!), f32(queries[q]!))) + 1,
      );
      if (iw < 0) iw = 0;
      let ih = f32(
        f32(
          Math.min(f32(anchors[a + 3]!), f32(queries[q + 3]!)) - Math.max(f32(anchors[a + 1]!), f32(queries[q + 1]!)),
        ) + 1,
      );
      if (ih < 0) ih = 0;
      const intersection = f32(iw * ih);
      const union = f32(f32(anchorArea + queryAreas[j]!) - intersection);
      overlaps[i * k + j] = intersection / union;
    }
  }
  return overlaps;
}
