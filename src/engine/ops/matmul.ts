/**
 * matmul(a, b): [m,k] @ [k,n] -> [m,n], or batched [B,m,k] @ [B,k,n] -> [B,m,n].
 * backward: da = gy @ b^T, db = a^T @ gy (as matmuls with transpose flags, so no transposed copy is made).
 */
import { runOp1 } from '../dispatch.js';
import { shapeStr } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { expectTensor } from './util.js';

export function matmul(a: Tensor, b: Tensor): Tensor {
  return matmulT(a, b, false, false);
}

/** op(a) @ op(b), op = transpose of the last two axes when the flag is set. */
export function matmulT(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  expectTensor('matmul', 'operand 0', a);
  expectTensor('matmul', 'operand 1', b);
  const rank = a.rank;
  if ((rank !== 2 && rank !== 3) || b.rank !== rank) {
    throw new Error(`matmul: shapes ${shapeStr(a.shape)} and ${shapeStr(b.shape)}: expected two rank-2 ([m,k] @ [k,n]) or two rank-3 ([B,m,k] @ [B,k,n]) tensors`);
  }
  const batch = rank === 3 ? a.shape[0] : 1;
  if (rank === 3 && b.shape[0] !== batch) throw new Error(`matmul: batch sizes differ: ${shapeStr(a.shape)} @ ${shapeStr(b.shape)}`);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, k] = transA ? [ac, ar] : [ar, ac];
  const [k2, n] = transB ? [bc, br] : [br, bc];
  if (k !== k2) {
    throw new Error(`matmul: inner dimensions differ: ${shapeStr(a.shape)}${transA ? '^T' : ''} @ ${shapeStr(b.shape)}${transB ? '^T' : ''} (${k} vs ${k2})`);
  }
  const outShape = rank === 3 ? [batch, m, n] : [m, n];
  return runOp1({
    op: 'matmul', inputs: [a, b], inputNames: ['a', 'b'], outputs: [outShape], flops: 2 * batch * m * n * k,
    ...(transA || transB ? { attrs: { transA, transB } } : {}),
    kernel: (be, [o], [as, bs]) => be.matmul(as, bs, o, batch, m, k, n, transA, transB),
    backward: (gy) => {
      // C = op(A) op(B): d op(A) = gy op(B)^T, d op(B) = op(A)^T gy; un-transpose where op was a transpose.
      // Only the gradients an input needs are computed.
      const da = (): Tensor => (!transA ? matmulT(gy, b, false, !transB) : transB ? matmulT(b, gy, true, true) : matmulT(b, gy, false, true));
      const db = (): Tensor => (!transB ? matmulT(a, gy, !transA, false) : transA ? matmulT(gy, a, true, true) : matmulT(gy, a, true, false));
      return [a.requiresGrad ? da() : null, b.requiresGrad ? db() : null];
    },
  });
}
