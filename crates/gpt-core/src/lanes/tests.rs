//! Resumed lanes against full forward passes with the same interventions, on tiny random
//! models of both architectures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use tch::{Device, Kind, Tensor};

use super::{run_lanes, BaseRun, Lane, LaneWrite};
use crate::intervention::{NoHooks, SiteWrite, Sites, WriteOp};
use crate::random::tiny_config;
use crate::{
    Architecture, BlockSite, ForwardOptions, HookPoint, HookableModel, RandomInit, TokenBatch,
    Transformer,
};

fn model(arch: Architecture) -> Transformer {
    let mut c = tiny_config(arch);
    c.n_layers = 4;
    Transformer::random(
        &c,
        RandomInit { seed: 5, std: 0.4 },
        Device::Cpu,
        Kind::Float,
    )
    .unwrap()
}

/// `b` prompts of `len` tokens.
fn batch(b: usize, len: usize) -> TokenBatch {
    let rows: Vec<Vec<i64>> = (0..b)
        .map(|r| {
            (0..len)
                .map(|i| ((7 * i + 13 * r + 3) % 60) as i64)
                .collect()
        })
        .collect();
    TokenBatch::pad(&rows, Default::default(), 0, Device::Cpu).unwrap()
}

fn random(size: &[i64], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn(size, (Kind::Float, Device::Cpu))
}

/// One intervention of a test lane, relative to the lane's first position `t`.
struct Edit {
    point: HookPoint,
    position: usize,
    head: Option<usize>,
    op: WriteOp,
    values: Tensor,
}

impl Edit {
    fn lane_write(&self) -> LaneWrite {
        let w = LaneWrite {
            point: self.point,
            position: self.position,
            head: None,
            op: self.op,
            values: self.values.shallow_clone(),
        };
        match self.head {
            Some(h) => w.head(h),
            None => w,
        }
    }

    fn site_write(&self, t: usize) -> SiteWrite<'static> {
        let mut sites = Sites::position((t + self.position) as i64);
        if let Some(h) = self.head {
            sites = sites.head(h);
        }
        SiteWrite::new(
            self.point,
            sites,
            self.op,
            crate::intervention::Values::Tensor(self.values.shallow_clone()),
        )
    }
}

/// A lane from block `start` whose initial residual has `init_edit` added at its first
/// position (`[b, d]`), with `edits` above.
struct Case {
    start: usize,
    init_edit: Option<Tensor>,
    edits: Vec<Edit>,
}

/// The last position's logits of a full pass with the case's interventions, `[b, vocab]`.
fn full_pass(m: &Transformer, tokens: &TokenBatch, t: usize, case: &Case) -> Tensor {
    let n_layers = m.config().n_layers;
    let mut writes: Vec<SiteWrite<'static>> = Vec::new();
    if let Some(v) = &case.init_edit {
        let point = if case.start < n_layers {
            HookPoint::resid_pre(case.start)
        } else {
            HookPoint::resid_post(n_layers - 1)
        };
        writes.push(SiteWrite::add(
            point,
            Sites::position(t as i64),
            v.shallow_clone(),
        ));
    }
    writes.extend(case.edits.iter().map(|e| e.site_write(t)));
    let options = ForwardOptions::last();
    m.forward_with(tokens, options, &mut writes)
        .unwrap()
        .logits()
        .unwrap()
}

fn lane(base: &BaseRun, t: usize, case: &Case) -> Lane {
    let entering = base.entering(case.start).unwrap();
    let s = entering.size()[1] - t as i64;
    let init = entering.narrow(1, t as i64, s);
    let init = match &case.init_edit {
        Some(v) => {
            let first = init.narrow(1, 0, 1) + v.unsqueeze(1);
            Tensor::cat(&[first, init.narrow(1, 1, s - 1)], 1)
        }
        None => init,
    };
    Lane {
        start: case.start,
        init,
        writes: case.edits.iter().map(Edit::lane_write).collect(),
    }
}

/// Cases covering: a changed initial residual (also after the last block), writes over a
/// window of blocks, one head of `hook_z`, an add at `hook_resid_pre`, writes at the last
/// position and at non-last positions of the last block, per-row values.
fn cases(m: &Transformer, b: i64, s: usize, seed: i64) -> Vec<Case> {
    let c = m.config();
    let (n, d) = (c.n_layers, c.d_model as i64);
    let last = s - 1;
    let mut seed = seed;
    let mut v = |size: &[i64]| {
        seed += 1;
        random(size, seed)
    };
    let edit = |point, position, op, values| Edit {
        point,
        position,
        head: None,
        op,
        values,
    };
    vec![
        Case {
            start: 2,
            init_edit: Some(v(&[b, d])),
            edits: vec![],
        },
        Case {
            start: n,
            init_edit: Some(v(&[b, d])),
            edits: vec![],
        },
        Case {
            start: 0,
            init_edit: None,
            edits: (0..n)
                .map(|j| edit(HookPoint::mlp_out(j), 0, WriteOp::Set, v(&[d])))
                .collect(),
        },
        Case {
            start: 1,
            init_edit: None,
            edits: vec![
                Edit {
                    point: HookPoint::z(1),
                    position: last,
                    head: Some(2),
                    op: WriteOp::Set,
                    values: v(&[c.d_head as i64]),
                },
                edit(HookPoint::resid_pre(2), 0, WriteOp::Add, v(&[b, d])),
                edit(
                    HookPoint::block(n - 1, BlockSite::AttnOut),
                    last,
                    WriteOp::Add,
                    v(&[d]),
                ),
                edit(HookPoint::resid_post(n - 1), 0, WriteOp::Set, v(&[d])),
            ],
        },
        // Shares its points with the case above: one write over both lanes' rows, with
        // values given per lane and per row.
        Case {
            start: 0,
            init_edit: None,
            edits: (0..n)
                .map(|j| edit(HookPoint::mlp_out(j), 0, WriteOp::Set, v(&[b, d])))
                .collect(),
        },
        Case {
            start: 1,
            init_edit: None,
            edits: (1..n)
                .map(|j| edit(HookPoint::attn_out(j), 0, WriteOp::Set, v(&[b, d])))
                .collect(),
        },
    ]
}

#[track_caller]
fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}");
    let diff = (a - b).abs().max().double_value(&[]);
    assert!(diff <= 1e-4, "{what}: max |lanes − full| = {diff}");
}

#[test]
fn lanes_equal_full_passes() {
    for arch in Architecture::ALL {
        let m = model(arch);
        for (b, len, t) in [(1usize, 6usize, 5usize), (1, 6, 2), (2, 5, 0), (3, 7, 3)] {
            let tokens = batch(b, len);
            let base = BaseRun::new(&m, &tokens, &mut NoHooks, &|_| false).unwrap();
            let past = base.past(t).unwrap();
            let cases = cases(&m, b as i64, len - t, (b * 100 + t) as i64);
            let lanes: Vec<Lane> = cases.iter().map(|c| lane(&base, t, c)).collect();
            // All in one batch, one lane per batch, and two lanes per batch (the starts
            // are out of order, so the results are put back in lane order).
            for max_rows in [usize::MAX, 1, 2 * b] {
                let out = run_lanes(&m, past.as_ref(), &lanes, max_rows).unwrap();
                assert_eq!(out.logits.size()[0], (lanes.len() * b) as i64);
                for (i, case) in cases.iter().enumerate() {
                    let full = full_pass(&m, &tokens, t, case);
                    let mine = out.logits.narrow(0, (i * b) as i64, b as i64);
                    assert_close(
                        &mine,
                        &full,
                        &format!("{arch:?} b {b} len {len} t {t} max_rows {max_rows} lane {i}"),
                    );
                }
            }
        }
    }
}

#[test]
fn rows_per_block_count_the_admitted_lanes() {
    let m = model(Architecture::Gpt2);
    let tokens = batch(2, 5);
    let base = BaseRun::new(&m, &tokens, &mut NoHooks, &|_| false).unwrap();
    let past = base.past(4).unwrap();
    let lanes: Vec<Lane> = [3usize, 1, 4]
        .iter()
        .map(|&start| Lane {
            start,
            init: base.entering(start).unwrap().narrow(1, 4, 1),
            writes: vec![],
        })
        .collect();
    let out = run_lanes(&m, past.as_ref(), &lanes, usize::MAX).unwrap();
    assert_eq!(out.rows_per_block, vec![0, 2, 2, 4]);
    // Nothing edited: every lane reproduces the base run's logits.
    for i in 0..3 {
        assert_close(&out.logits.narrow(0, 2 * i, 2), base.logits(), "unedited");
    }
}

#[test]
fn bad_lanes_are_refused() {
    let m = model(Architecture::Llama);
    let tokens = batch(1, 4);
    let base = BaseRun::new(&m, &tokens, &mut NoHooks, &|_| false).unwrap();
    let past = base.past(3).unwrap();
    let init = |j: usize| base.entering(j).unwrap().narrow(1, 3, 1);
    let d = m.config().d_model as i64;
    let write = |point| LaneWrite::set(point, 0, Tensor::zeros([d], (Kind::Float, Device::Cpu)));
    let refused = |lanes: Vec<Lane>| run_lanes(&m, past.as_ref(), &lanes, 8).is_err();
    assert!(refused(vec![]));
    // A write below the lane's first block would never fire.
    assert!(refused(vec![Lane {
        start: 2,
        init: init(2),
        writes: vec![write(HookPoint::mlp_out(1))],
    }]));
    // Positions beyond the lane's.
    assert!(refused(vec![Lane {
        start: 2,
        init: init(2),
        writes: vec![LaneWrite::set(
            HookPoint::mlp_out(2),
            1,
            Tensor::zeros([d], (Kind::Float, Device::Cpu)),
        )],
    }]));
    assert!(refused(vec![Lane {
        start: 5,
        init: init(4),
        writes: vec![],
    }]));
    // Lanes of different shapes, and a past of another batch.
    assert!(refused(vec![
        Lane {
            start: 1,
            init: init(1),
            writes: vec![],
        },
        Lane {
            start: 1,
            init: base.entering(1).unwrap().narrow(1, 2, 2),
            writes: vec![],
        },
    ]));
    assert!(run_lanes(
        &m,
        past.as_ref(),
        &[Lane {
            start: 1,
            init: init(1).repeat([2, 1, 1]),
            writes: vec![],
        }],
        8
    )
    .is_err());
}
