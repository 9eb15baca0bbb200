//! The scheduler actor: owns the timer heap of every scheduled, enabled task and fires them.
//!
//! It receives [`Cmd`]s over a channel and sleeps until the earliest due instant; nothing else
//! touches its state. Next-fire math is `sovereign_core::schedule`; this file only keeps time.
//! A fire is handed to the `fire` callback (the executor), which must not block.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sovereign_core::task::{resume_plan, Task, TaskId};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::support::Tasks;

/// A task due now; `scheduled_for` is the instant its schedule named.
#[derive(Debug, Clone)]
pub(crate) struct Fire {
    pub task_id: TaskId,
    pub scheduled_for: DateTime<Utc>,
}

/// What `/status` and `/tasks` learn from the scheduler.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub next: HashMap<TaskId, DateTime<Utc>>,
    pub fired: u64,
    pub running: bool,
}

enum Cmd {
    /// Add or replace a task's schedule. `restore` marks start-up, when missed runs are judged
    /// from `cursor` (the last handled fire).
    Upsert {
        task: Arc<Task>,
        cursor: Option<DateTime<Utc>>,
        restore: bool,
    },
    Remove(TaskId),
    Snapshot(oneshot::Sender<Snapshot>),
    Stop(oneshot::Sender<()>),
}

#[derive(Clone)]
pub(crate) struct Scheduler {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Scheduler {
    pub(crate) fn spawn(tasks: &Tasks, fire: impl Fn(Fire) + Send + Sync + 'static) -> Scheduler {
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = Actor {
            heap: BinaryHeap::new(),
            entries: HashMap::new(),
            generation: 0,
            fired: 0,
            fire: Box::new(fire),
        };
        tasks.spawn(actor.run(rx));
        Scheduler { tx }
    }

    pub(crate) fn upsert(&self, task: Arc<Task>, cursor: Option<DateTime<Utc>>, restore: bool) {
        let _ = self.tx.send(Cmd::Upsert {
            task,
            cursor,
            restore,
        });
    }

    pub(crate) fn remove(&self, id: TaskId) {
        let _ = self.tx.send(Cmd::Remove(id));
    }

    pub(crate) async fn snapshot(&self) -> Snapshot {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Snapshot(tx)).is_err() {
            return Snapshot::default();
        }
        rx.await.unwrap_or_default()
    }

    pub(crate) async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Entry {
    generation: u64,
    task: Arc<Task>,
    next: DateTime<Utc>,
}

struct Actor {
    heap: BinaryHeap<Reverse<(DateTime<Utc>, u64, TaskId)>>,
    entries: HashMap<TaskId, Entry>,
    generation: u64,
    fired: u64,
    fire: Box<dyn Fn(Fire) + Send + Sync>,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            let wake = self.heap.peek().map(|Reverse((at, _, _))| instant_of(*at));
            let cmd = match wake {
                Some(deadline) => tokio::select! {
                    biased;
                    cmd = rx.recv() => cmd,
                    _ = tokio::time::sleep_until(deadline) => { self.fire_due(); continue; }
                },
                None => rx.recv().await,
            };
            match cmd {
                Some(Cmd::Upsert {
                    task,
                    cursor,
                    restore,
                }) => self.upsert(task, cursor, restore),
                Some(Cmd::Remove(id)) => {
                    self.entries.remove(&id);
                }
                Some(Cmd::Snapshot(reply)) => {
                    let _ = reply.send(Snapshot {
                        next: self
                            .entries
                            .iter()
                            .map(|(id, e)| (id.clone(), e.next))
                            .collect(),
                        fired: self.fired,
                        running: true,
                    });
                }
                Some(Cmd::Stop(done)) => {
                    let _ = done.send(());
                    return;
                }
                None => return,
            }
        }
    }

    fn upsert(&mut self, task: Arc<Task>, cursor: Option<DateTime<Utc>>, restore: bool) {
        self.entries.remove(&task.id);
        let Some(schedule) = task.schedule.as_ref().filter(|_| task.enabled) else {
            return;
        };
        let now = Utc::now();
        let next = if restore {
            let plan = resume_plan(schedule, task.policy.missed, cursor, task.created_at, now);
            if let Some(due) = plan.catch_up {
                tracing::info!(task = %task.id, missed = %due, "running once for runs missed while down");
                self.fired += 1;
                (self.fire)(Fire {
                    task_id: task.id.clone(),
                    scheduled_for: due,
                });
            }
            plan.next
        } else {
            schedule.next_after(now, task.created_at)
        };
        if let Some(at) = next {
            self.push(task, at);
        }
    }

    fn push(&mut self, task: Arc<Task>, at: DateTime<Utc>) {
        self.generation += 1;
        let id = task.id.clone();
        self.heap.push(Reverse((at, self.generation, id.clone())));
        self.entries.insert(
            id,
            Entry {
                generation: self.generation,
                task,
                next: at,
            },
        );
    }

    fn fire_due(&mut self) {
        let now = Utc::now();
        while let Some(Reverse((at, generation, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let (at, generation) = (*at, *generation);
            let Some(Reverse((_, _, id))) = self.heap.pop() else {
                break;
            };
            let current = self
                .entries
                .get(&id)
                .is_some_and(|e| e.generation == generation);
            if !current {
                continue; // replaced or removed since it was queued
            }
            self.fired += 1;
            (self.fire)(Fire {
                task_id: id.clone(),
                scheduled_for: at,
            });
            let Some(entry) = self.entries.remove(&id) else {
                continue;
            };
            if let Some(schedule) = entry.task.schedule.as_ref() {
                // Fires that fell behind are not replayed: the next one is the first after now.
                if let Some(next) = schedule.next_after(now, entry.task.created_at) {
                    self.push(entry.task, next);
                }
            }
        }
    }
}

fn instant_of(at: DateTime<Utc>) -> Instant {
    let now = Utc::now();
    let ahead = (at - now).to_std().unwrap_or_default();
    Instant::now() + ahead
}
