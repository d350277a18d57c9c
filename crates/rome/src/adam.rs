//! Adam, as torch's, on one tensor (the v* and fine-tuning optimisations).

use gpt_core::tch::Tensor;

use crate::error::Result;

/// Adam on one tensor (defaults β = (0.9, 0.999), ε = 1e-8, as torch's).
pub(crate) struct Adam {
    lr: f64,
    m: Tensor,
    v: Tensor,
    t: i32,
}

impl Adam {
    pub(crate) fn new(like: &Tensor, lr: f64) -> Result<Self> {
        Ok(Self {
            lr,
            m: like.f_zeros_like()?,
            v: like.f_zeros_like()?,
            t: 0,
        })
    }

    /// One step on `x` (a leaf requiring grad) from its gradient.
    pub(crate) fn step(&mut self, x: &mut Tensor, grad: &Tensor) -> Result<()> {
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        self.t += 1;
        self.m = self
            .m
            .f_mul_scalar(b1)?
            .f_add(&grad.f_mul_scalar(1.0 - b1)?)?;
        self.v = self
            .v
            .f_mul_scalar(b2)?
            .f_add(&grad.f_square()?.f_mul_scalar(1.0 - b2)?)?;
        let m_hat = self.m.f_div_scalar(1.0 - b1.powi(self.t))?;
        let v_hat = self.v.f_div_scalar(1.0 - b2.powi(self.t))?;
        let step = m_hat.f_div(&v_hat.f_sqrt()?.f_add_scalar(eps)?)?;
        gpt_core::tch::no_grad(|| -> Result<()> {
            let _ = x.f_sub_(&step.f_mul_scalar(self.lr)?)?;
            Ok(())
        })
    }
}
