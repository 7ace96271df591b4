//! `submitReport`: one validator's measurements of the previous epoch. Only authorities
//! report, once per epoch each, and only of registered providers, with figures that are
//! consistent (no more answers than jobs, no more audits than answers); anything else reverts
//! with the reason.

use aicoin_primitives::registry::{authorities_slot, reporters_slot};
use alloy_primitives::Address;

use super::{
    IComputeRegistry::{self, Measurement},
    state::{self, Epoch, Provider, Status},
};
use crate::{
    call::{CallResult, Exit, ModuleCall},
    store::{load_addresses, push_address},
};

pub fn submit(
    call: &mut ModuleCall<'_>,
    epoch: u64,
    measurements: &[Measurement],
) -> CallResult<()> {
    let validator = call.caller();
    if !load_addresses(call, authorities_slot())?.contains(&validator) {
        return Err(Exit::revert(format!(
            "IComputeRegistry: only validators report; {validator} is not an authority"
        )));
    }
    let current = Epoch::load(call)?.number;
    if current == 0 || epoch != current - 1 {
        return Err(Exit::revert(format!(
            "IComputeRegistry: a report for epoch {epoch} is not accepted during epoch \
             {current} (only the previous epoch's are)"
        )));
    }
    let reporters = load_addresses(call, reporters_slot(epoch))?;
    if reporters.contains(&validator) {
        return Err(Exit::revert(format!(
            "IComputeRegistry: {validator} already reported for epoch {epoch}"
        )));
    }
    let mut seen: Vec<Address> = Vec::with_capacity(measurements.len());
    for (i, m) in measurements.iter().enumerate() {
        check(call, i, m, &seen)?;
        seen.push(m.provider);
        state::store_report(call, epoch, validator, m)?;
    }
    push_address(call, reporters_slot(epoch), validator)?;
    call.emit(&IComputeRegistry::ReportSubmitted {
        epoch,
        validator,
        providers: alloy_primitives::U256::from(measurements.len()),
    })
}

fn check(
    call: &mut ModuleCall<'_>,
    index: usize,
    m: &Measurement,
    seen: &[Address],
) -> CallResult<()> {
    let problem = if seen.contains(&m.provider) {
        Some("names a provider twice".to_string())
    } else if !matches!(
        Provider::status(call, m.provider)?,
        Status::Active | Status::Leaving
    ) {
        Some("names an address that is not a registered provider".to_string())
    } else if m.jobs == 0 {
        Some("has no jobs (leave out a provider that was not probed)".to_string())
    } else if m.answered > m.jobs {
        Some(format!("has {} answers to {} jobs", m.answered, m.jobs))
    } else if m.audited > m.answered {
        Some(format!("audits {} of {} answers", m.audited, m.answered))
    } else if m.auditFailed > m.audited {
        Some(format!(
            "has {} failed audits of {} audited",
            m.auditFailed, m.audited
        ))
    } else if m.answered == 0 && (m.tokens > 0 || m.rate > 0) {
        Some("has tokens or a rate but no answers".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Exit::revert(format!(
            "IComputeRegistry: measurement {index} ({}) {problem}",
            m.provider
        ))),
        None => Ok(()),
    }
}
