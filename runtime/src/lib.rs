//! Trellis flow executor: a pure, journal-driven state machine.
//!
//! [`Executor::step`] takes a run's [`RunState`] one node activation further and returns
//! the journal record of what happened plus what the caller must do next (continue, park
//! on a timer or an event subscription, or finish). It does no I/O and reads the clock only
//! through its `now` argument, so the server decides what is durable and when, and crash
//! recovery is just "load the last committed state and call `step` again".

pub mod connector;
pub mod executor;
pub mod limits;
pub mod retry;
pub mod state;

pub use executor::{CompileError, CompiledFlow, Executor, Next, StepRecord, StepStatus};
pub use limits::RunLimits;
pub use state::{
    Activation, CallRequest, CallResult, PendingCall, Response, RunState, Subscription,
};
