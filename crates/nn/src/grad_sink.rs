//! Parameter gradients that the fused ops hand over directly, bypassing candle's accumulation.
//!
//! candle's backward adds every gradient into its store as `zeros_like(param) + grad`: for a
//! parameter used once that is a fresh zeroed buffer and one more pass over it, which for the
//! weight matrices of an MLP VAE was about a tenth of a training step. Inside [`backward`], the
//! fused dense layer deposits the gradients of its weight and bias here instead (summing when a
//! parameter is used more than once), and they are merged into the store at the end. Outside
//! [`backward`] (a plain `loss.backward()`), nothing changes.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, TensorId};

thread_local! {
    /// The open sink of this thread: per parameter, the parameter and its summed gradient.
    static SINK: RefCell<Option<HashMap<TensorId, (Tensor, Tensor)>>> = const { RefCell::new(None) };
}

/// `loss.backward()`, with the fused ops' parameter gradients collected directly; the result
/// holds the same gradients as candle's own backward.
pub fn backward(loss: &Tensor) -> Result<GradStore> {
    SINK.with(|s| *s.borrow_mut() = Some(HashMap::new()));
    let result = loss.backward();
    let sunk = SINK.with(|s| s.borrow_mut().take()).unwrap_or_default();
    let mut grads = result?;
    for (_, (param, grad)) in sunk {
        let total = match grads.remove(&param) {
            Some(other) => (other + grad)?,
            None => grad,
        };
        grads.insert(&param, total);
    }
    Ok(grads)
}

/// Called by a fused op's backward with the gradient of its input `param`: keeps it when a
/// [`backward`] is running on this thread and `param` is a trainable variable (returns
/// `None`), else gives it back for candle to accumulate.
pub fn deposit(param: &Tensor, grad: Tensor) -> Result<Option<Tensor>> {
    if !param.is_variable() {
        return Ok(Some(grad));
    }
    SINK.with(|s| {
        let mut sink = s.borrow_mut();
        let Some(sink) = sink.as_mut() else {
            return Ok(Some(grad));
        };
        match sink.remove(&param.id()) {
            Some((p, earlier)) => {
                sink.insert(param.id(), (p, (earlier + grad)?));
            }
            None => {
                sink.insert(param.id(), (param.clone(), grad));
            }
        }
        Ok(None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn without_a_sink_gradients_go_back_to_candle() {
        let v = Var::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
        let g = Tensor::new(&[3.0f64, 4.0], &Device::Cpu).unwrap();
        assert!(deposit(v.as_tensor(), g).unwrap().is_some());
    }
}
