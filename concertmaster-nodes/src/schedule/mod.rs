//! Schedules: cron in a time zone, and the scheduler that starts runs of
//! workflows with a `schedule` trigger.

pub(crate) mod cron;
pub(crate) mod scheduler;
