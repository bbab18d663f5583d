/**
 * Reverse-mode autograd, micrograd-style: every op leaves a Node on its output that holds its inputs
 * and a closure mapping the output's gradient to the inputs' gradients (written with other ops, so
 * the backward pass goes through the same dispatch point, trace and NaN guard as the forward).
 *
 * backward(): topological order from the output, then one reverse loop. Gradients flowing into a
 * tensor from several consumers are summed. Leaves that require grad receive `.grad` (accumulated
 * across calls, kept out of scopes); every intermediate gradient is disposed as soon as it is used,
 * and the graph (with the tensors its ops saved) is released at the end.
 *
 * Two checks run before anything is computed:
 *   - no tensor on the way may come from a graph an earlier backward() released (a second backward through it
 *     would stop there and treat it as a leaf);
 *   - no value an op's backward reads may have been overwritten in place since the op ran (Adam's step,
 *     loadStateDict: the storage's version went up): its inputs (but those in `unread`, and none where it says
 *     readsInputs: false), and its output where it says readsOutput (exp, sqrt, sigmoid, tanh, div).
 * A backward() that throws later (an op's error, the NaN guard on the CPU) gives no leaf its gradient: the leaves'
 * new .grad values, sums included, are all made before the first is set, and the graph is kept. So a refused or
 * failed backward() changes nothing. (On webgpu the NaN guard reports at the next readback, after backward()
 * has returned.)
 */
import { shapeStr } from './dtype.js';
import { noGrad, withPhase } from './mode.js';
import { add } from './ops/elementwise.js';
import { expectOptions } from './ops/util.js';
import { installBackward, ones, scope, Tensor, type BackwardOptions } from './tensor.js';

export function backward(root: Tensor, gradient?: Tensor, options: BackwardOptions = {}): void {
  if (!root.requiresGrad) {
    throw new Error(`backward: tensor ${shapeStr(root.shape)} does not require grad (none of the tensors it was computed from has requiresGrad, or it was made under noGrad)`);
  }
  const only = onlyLeaves(options);
  const order = topologicalOrder(root);
  checkGraph(order);
  let seed: Tensor;
  if (gradient) {
    if (gradient.shape.length !== root.shape.length || gradient.shape.some((d, i) => d !== root.shape[i])) {
      throw new Error(`backward: gradient has shape ${shapeStr(gradient.shape)}, expected the output's shape ${shapeStr(root.shape)}`);
    }
    if (gradient.dtype !== root.dtype) throw new Error(`backward: gradient is ${gradient.dtype}, output is ${root.dtype}`);
    if (gradient.backend !== root.backend) throw new Error(`backward: gradient is on backend '${gradient.backend.name}', output is on '${root.backend.name}'`);
    seed = gradient.viewAs(gradient.shape); // our own reference, so disposing it never frees the caller's tensor
  } else {
    if (root.size !== 1) {
      throw new Error(`backward: output has shape ${shapeStr(root.shape)}; call it on a scalar (e.g. a loss) or pass a gradient of that shape`);
    }
    seed = ones(root.shape, { dtype: root.dtype, backend: root.backend });
  }

  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  let inputGrads: Array<Tensor | null> = [];
  let current: Tensor | null = null; // the gradient being passed on (out of `grads`, not yet disposed)
  // The leaves' new .grad values (sums with what they held), given to .grad only when the whole pass has succeeded:
  // a backward() that fails partway (the NaN guard, an op's error) leaves every .grad as it was and the graph in place.
  const newLeafGrads: Array<[Tensor, Tensor]> = [];
  try {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      current = g;
      const node = t.node;
      if (!node) {
        if (only === null || only.has(t)) newLeafGrads.push([t, newLeafGrad(t, g)]);
        else g.dispose(); // a leaf the caller did not ask for keeps its .grad as it was
        current = null;
        continue;
      }
      inputGrads = [];
      try {
        // In a scope, so what a backward that throws had made so far is freed.
        inputGrads = scope(() => withPhase('backward', () => noGrad(() => node.backward(g))));
      } catch (e) {
        // A tensor the op saved for its backward was disposed (typically by the scope() that made the graph).
        if (e instanceof Error && / was (disposed|used after dispose)/.test(e.message)) {
          throw new Error(`backward through '${node.op}' (tensor #${t.id} ${shapeStr(t.shape)}): ${e.message}; the graph still needs it: call backward() inside the scope() that made the graph, or keep() what it saved`);
        }
        throw e;
      }
      if (inputGrads.length !== node.inputs.length) {
        throw new Error(`${node.op} backward: returned ${inputGrads.length} gradients for ${node.inputs.length} inputs`);
      }
      // Tensors whose ownership passed to `grads`; every other one the backward returned, and g, is freed after the
      // loop (so an input later in it can still read a gradient an earlier one summed).
      const handed = new Set<Tensor>();
      node.inputs.forEach((input, j) => {
        const gi = inputGrads[j];
        if (!gi || !input.requiresGrad) return;
        if (gi.shape.length !== input.shape.length || gi.shape.some((d, k) => d !== input.shape[k])) {
          throw new Error(`${node.op} backward: gradient for input ${j} has shape ${shapeStr(gi.shape)}, expected ${shapeStr(input.shape)}`);
        }
        // (An input the forward code disposed still passes its gradient on: only a live one can be compared.)
        if (!input.disposed && (gi.dtype !== input.dtype || gi.backend !== input.backend)) {
          throw new Error(`${node.op} backward: gradient for input ${j} is ${gi.dtype} on '${gi.backend.name}', the input ${input.dtype} on '${input.backend.name}'`);
        }
        const prev = grads.get(input);
        if (prev) {
          grads.set(input, withPhase('backward', () => noGrad(() => add(prev, gi))));
          // A gradient this loop handed over may be returned for a later input too: freed after the loop instead.
          if (handed.has(prev)) handed.delete(prev);
          else prev.dispose();
        } else if (gi === g || handed.has(gi)) {
          grads.set(input, gi.viewAs(gi.shape)); // never hand one tensor object to two owners
        } else {
          grads.set(input, gi);
          handed.add(gi);
        }
      });
      for (const x of new Set([...inputGrads, g])) if (x && !handed.has(x)) x.dispose();
      inputGrads = [];
      current = null;
    }
  } catch (e) {
    // Nothing was given to a leaf: free every gradient made, and keep the graph.
    for (const g of [...grads.values(), ...inputGrads, current, ...newLeafGrads.map(([, s]) => s)]) g?.dispose();
    throw e;
  }
  for (const g of grads.values()) g.dispose();
  // Cannot throw from here on.
  for (const [leaf, g] of newLeafGrads) {
    if (leaf.grad !== g) leaf.grad?.dispose();
    leaf.grad = g.keep();
  }
  releaseGraph(order);
}

const BACKWARD_OPTIONS: Record<keyof BackwardOptions, true> = { inputs: true };

/** options.inputs as a set (null: every leaf), checked: an array of leaves that require gradients. */
function onlyLeaves(options: BackwardOptions | null): Set<Tensor> | null {
  expectOptions('backward', options, BACKWARD_OPTIONS);
  if (options?.inputs === undefined) return null;
  if (!Array.isArray(options.inputs) || options.inputs.length === 0) throw new Error(`backward: inputs must be a non-empty array of leaf tensors that require gradients, got ${Array.isArray(options.inputs) ? '[]' : String(options.inputs)}`);
  options.inputs.forEach((t: unknown, i) => {
    if (!(t instanceof Tensor)) throw new Error(`backward: inputs[${i}] is not a Tensor (got ${t === null ? 'null' : typeof t})`);
    const what = `backward: inputs[${i}] (tensor #${t.id} ${shapeStr(t.shape)}${t.name ? ` '${t.name}'` : ''})`;
    if (!t.requiresGrad) throw new Error(`${what} does not require gradients`);
    if (t.node || t.releasedOp !== null) throw new Error(`${what} is the output of an op, not a leaf: only leaves receive .grad`);
  });
  return new Set(options.inputs);
}

/**
 * A leaf's new .grad from its gradient g of this pass: g itself, or its sum with the .grad the leaf holds (then g is
 * freed). Throws, leaving g to the caller, when that .grad is not of the leaf's own shape, dtype and backend.
 */
function newLeafGrad(leaf: Tensor, g: Tensor): Tensor {
  const old = leaf.grad;
  if (!old || old.disposed) return g;
  if (old.shape.length !== leaf.shape.length || old.shape.some((d, k) => d !== leaf.shape[k]) || old.dtype !== leaf.dtype || old.backend !== leaf.backend) {
    throw new Error(`backward: tensor #${leaf.id} ${shapeStr(leaf.shape)}${leaf.name ? ` '${leaf.name}'` : ''} holds a .grad of ${shapeStr(old.shape)} ${old.dtype} on '${old.backend.name}', not its own shape, dtype and backend; set .grad to null (zeroGrad) first`);
  }
  const sum = withPhase('backward', () => noGrad(() => add(old, g)));
  g.dispose();
  return sum;
}

/** Throws, naming the tensor and the op, if the graph was released by an earlier backward() or an input changed in place. */
function checkGraph(order: readonly Tensor[]): void {
  for (const t of order) {
    if (t.releasedOp !== null) {
      throw new Error(`backward: tensor #${t.id} ${shapeStr(t.shape)} (made by '${t.releasedOp}') belongs to a graph that an earlier backward() already released, so no gradient can flow through it again; compute it again, add the losses and call backward() once, or detach() what is carried from one step to the next`);
    }
    const node = t.node;
    if (!node) continue;
    if (node.outputVersion >= 0 && !t.disposed && t.handle.version !== node.outputVersion) {
      throw new Error(`backward: the output of '${node.op}' (tensor #${t.id} ${shapeStr(t.shape)}${t.name ? ` '${t.name}'` : ''}) was overwritten in place (by an optimizer step, batch norm's running statistics or loadStateDict) after '${node.op}' made it (a detach()ed view shares its storage), and its gradient reads it; call backward() before changing it, or compute the forward pass again`);
    }
    node.inputs.forEach((input, j) => {
      const saved = node.versions[j];
      if (saved < 0 || input.disposed || input.handle.version === saved) return;
      throw new Error(`backward: input ${j} of '${node.op}' (tensor #${input.id} ${shapeStr(input.shape)}${input.name ? ` '${input.name}'` : ''}) was overwritten in place (by an optimizer step, batch norm's running statistics or loadStateDict) after '${node.op}' read it, so its gradient would use the new values; call backward() before changing it, or compute the forward pass again`);
    });
  }
}

/** Tensors reachable from root through nodes whose inputs require grad, inputs before outputs. Iterative (deep nets would overflow a recursive DFS). */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>([root]);
  const stack: Array<{ t: Tensor; next: number }> = [{ t: root, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const inputs = top.t.node?.inputs ?? [];
    if (top.next < inputs.length) {
      const child = inputs[top.next++];
      if (child.requiresGrad && !visited.has(child)) {
        visited.add(child);
        stack.push({ t: child, next: 0 });
      }
    } else {
      order.push(top.t);
      stack.pop();
    }
  }
  return order;
}

/** Drops the nodes (so saved inputs can be collected) and disposes the extra outputs ops kept for backward. */
function releaseGraph(order: Tensor[]): void {
  for (const t of order) {
    if (!t.node) continue;
    for (let k = 1; k < t.node.outputs.length; k++) t.node.outputs[k].dispose();
    t.releasedOp = t.node.op;
    t.node = null;
  }
}

/** Sets .grad of every given tensor to null, disposing the old gradients. */
export function zeroGrad(tensors: Iterable<Tensor>): void {
  for (const t of tensors) {
    t.grad?.dispose();
    t.grad = null;
  }
}

installBackward(backward);
