//! The hand-on against a line kept in memory: whose turn it is, who claims,
//! who is passed over.

use std::sync::Mutex;

use super::*;

const WINDOW: Duration = Duration::from_millis(30);

/// One entry of the model line.
#[derive(Debug, Clone)]
struct Entry {
    name: &'static str,
    version: u32,
    /// Marked as a waiter, with this window.
    window: Option<Duration>,
    /// Claims its turn as soon as it comes (a live waiter).
    live: bool,
}

/// A mutex's line: only the first entry has its turn.
struct Model(Mutex<Vec<Entry>>);

impl Model {
    fn new(entries: &[(&'static str, bool, bool)]) -> Self {
        let entries = entries
            .iter()
            .map(|&(name, marked, live)| Entry {
                name,
                version: 1,
                window: marked.then_some(WINDOW),
                live,
            })
            .collect();
        Model(Mutex::new(entries))
    }

    fn names(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().iter().map(|e| e.name).collect()
    }

    fn claimed(&self, name: &str) -> bool {
        let line = self.0.lock().unwrap();
        line.iter().any(|e| e.name == name && e.window.is_none())
    }
}

#[async_trait]
impl Line for Model {
    type Entry = (&'static str, u32);
    type Error = String;

    fn describe(&self) -> &str {
        "model"
    }

    async fn read_head(&self, me: Option<&str>) -> Result<Head<Self::Entry>, String> {
        let mut line = self.0.lock().unwrap();
        let mut due = Vec::new();
        if let Some(first) = line.first_mut() {
            if let Some(window) = first.window {
                due.push(Due {
                    entry: (first.name, first.version),
                    window,
                });
                if first.live {
                    // Woken by the removal that let it in: claims at once.
                    first.version += 1;
                    first.window = None;
                }
            }
        }
        let look_again = me.is_some_and(|me| line.first().is_some_and(|f| f.name != me));
        Ok(Head {
            read_at: Instant::now(),
            due,
            look_again,
        })
    }

    async fn still_unclaimed(&self, entry: &Self::Entry) -> bool {
        let line = self.0.lock().unwrap();
        line.iter().any(|e| (e.name, e.version) == *entry)
    }

    async fn pass_over(&self, entry: &Self::Entry) -> bool {
        let mut line = self.0.lock().unwrap();
        let before = line.len();
        line.retain(|e| (e.name, e.version) != *entry);
        line.len() < before
    }
}

#[tokio::test]
async fn dead_waiters_are_passed_over_until_a_live_one_claims() {
    let line = Model::new(&[
        ("a", true, false),
        ("b", true, false),
        ("c", true, true),
        ("d", true, false),
    ]);
    hand_on(&line).await;
    assert_eq!(
        line.names(),
        ["c", "d"],
        "the dead ones ahead of the live one go"
    );
    assert!(line.claimed("c"));
}

#[tokio::test]
async fn a_holder_at_the_head_is_never_passed_over() {
    let line = Model::new(&[("h", false, false), ("a", true, false)]);
    hand_on(&line).await;
    assert_eq!(line.names(), ["h", "a"]);
}

#[tokio::test]
async fn a_lookout_passes_over_a_turn_only_after_seeing_it_silent_for_its_window() {
    let line = Model::new(&[("a", true, false), ("me", true, false)]);
    let mut lookout = Lookout::new("me", WINDOW);
    lookout.look(&line).await;
    assert_eq!(line.names(), ["a", "me"], "seen once: not yet");
    let next = lookout.next().expect("a marked waiter ahead: looks again");
    tokio::time::sleep_until((next + WINDOW).into()).await;
    lookout.look(&line).await;
    assert_eq!(line.names(), ["me"], "silent for its window: passed over");
    lookout.look(&line).await;
    assert_eq!(lookout.next(), None, "nothing ahead any more");
}

#[tokio::test]
async fn a_lookout_starts_over_when_the_turn_it_saw_changed() {
    let line = Model::new(&[("a", true, false), ("me", true, false)]);
    let mut lookout = Lookout::new("me", WINDOW);
    lookout.look(&line).await;
    // "a" leaves and comes back (a new version): seen for the first time.
    line.0.lock().unwrap()[0].version = 7;
    tokio::time::sleep(WINDOW * 2).await;
    lookout.look(&line).await;
    assert_eq!(line.names(), ["a", "me"]);
}
