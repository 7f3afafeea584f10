//! `schedule`: starts runs on a cron schedule in a time zone. The node
//! passes on the item the [`Scheduler`](crate::Scheduler) starts the run
//! with (`scheduledFor`, the fire time).

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, NodeCategory, RegistryError},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schedule::cron::CronSchedule;

/// Config of a `schedule` node.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin", "missedFires": "fireOnce"}))]
pub(crate) struct ScheduleConfig {
    /// Cron, five fields or six with seconds first.
    #[schemars(length(min = 1), example = "0 9 * * MON-FRI")]
    pub(crate) cron: String,
    /// IANA time zone the cron is read in.
    #[serde(default = "utc")]
    #[schemars(example = "Europe/Berlin")]
    pub(crate) timezone: String,
    /// What to do with fire times missed while no engine ran.
    #[serde(default)]
    pub(crate) missed_fires: MissedFires,
}

fn utc() -> String {
    "UTC".into()
}

/// What the scheduler does with fire times that passed while no process
/// was running (or that it reached more than a minute late).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MissedFires {
    /// Forget them; continue with the next fire time.
    #[default]
    Skip,
    /// Start one run for all of them (for the latest missed time).
    FireOnce,
    /// Start a run for each (at most 1,000).
    FireAll,
}

/// Passes the trigger item on.
struct Schedule;

#[async_trait]
impl Node for Schedule {
    async fn execute(&self, _ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        Ok(input.into())
    }
}

/// Reads a `schedule` node's config, as the scheduler and publishing do.
pub(crate) fn parse(
    config: &serde_json::Value,
) -> Result<(ScheduleConfig, CronSchedule), ConfigError> {
    let config: ScheduleConfig =
        serde_json::from_value(config.clone()).map_err(|err| ConfigError::new(err.to_string()))?;
    let cron = cron_of(&config)?;
    Ok((config, cron))
}

fn cron_of(config: &ScheduleConfig) -> Result<CronSchedule, ConfigError> {
    CronSchedule::parse(&config.cron, &config.timezone).map_err(|err| {
        let at = if matches!(err, crate::CronError::TimeZone(_)) {
            "/timezone"
        } else {
            "/cron"
        };
        ConfigError::new(err.to_string()).at(at)
    })
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("schedule", NodeCategory::Trigger)
            .label("Schedule")
            .icon("calendar-clock")
            .description(
                "Starts a run on a cron schedule (seconds optional) read in an IANA time zone, \
                 right across daylight-saving changes; each fire time starts one run, also \
                 with several engines on one store.",
            ),
        |config: ScheduleConfig| cron_of(&config).map(|_| Schedule),
    )
}
