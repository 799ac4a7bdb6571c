//! The one rule that issues fencing tokens (`scripts/lib/fence.lua`), run
//! on a private server with the server clock pinned (a `redis.call` that
//! answers `TIME` with a fixed instant and passes every other command on):
//! max(counter + 1, clock in µs), a proposal taken only above that and at
//! most 100 ms ahead of the clock, exact integers, and the counter-only
//! rule ignoring the clock.

mod private_redis;

use private_redis::PrivateRedis;

const FENCE: &str = include_str!("../src/scripts/lib/fence.lua");
const COUNTER_ONLY: &str = include_str!("../src/scripts/lib/fence_counter_only.lua");

/// 1 700 000 000 s and 123 456 µs: the pinned clock.
const CLOCK: i64 = 1_700_000_000_123_456;

/// A script that pins `TIME` to ARGV[1] s + ARGV[2] µs, includes
/// `library` and issues a token of KEYS[1] with the proposal ARGV[3].
fn pinned(library: &str) -> redis::Script {
    redis::Script::new(&format!(
        "local real = redis\n\
         local redis = {{call = function(cmd, ...)\n\
           if cmd == 'TIME' then return {{ARGV[1], ARGV[2]}} end\n\
           return real.call(cmd, ...)\n\
         end}}\n\
         {library}\n\
         return next_fence(KEYS[1], ARGV[3])\n"
    ))
}

struct Rule {
    conn: redis::aio::MultiplexedConnection,
    script: redis::Script,
    key: String,
}

impl Rule {
    async fn new(server: &PrivateRedis, library: &str, key: &str) -> Self {
        let client = redis::Client::open(format!("redis://{}", server.addr())).unwrap();
        Rule {
            conn: client.get_multiplexed_async_connection().await.unwrap(),
            script: pinned(library),
            key: key.to_string(),
        }
    }

    /// A token issued at the pinned clock `at` (µs) with `proposal`.
    async fn issue(&mut self, at: i64, proposal: &str) -> i64 {
        self.script
            .key(&self.key)
            .arg(at / 1_000_000)
            .arg(at % 1_000_000)
            .arg(proposal)
            .invoke_async(&mut self.conn)
            .await
            .unwrap()
    }

    async fn set_counter(&mut self, value: i64) {
        let _: () = redis::cmd("SET")
            .arg(&self.key)
            .arg(value)
            .query_async(&mut self.conn)
            .await
            .unwrap();
    }

    async fn counter(&mut self) -> String {
        redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut self.conn)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_token_is_the_counter_plus_one_or_the_clock_whichever_is_larger() {
    let server = PrivateRedis::start(&[]);
    let mut rule = Rule::new(&server, FENCE, "fence:a").await;
    assert_eq!(
        rule.issue(CLOCK, "").await,
        CLOCK,
        "an empty counter takes the clock"
    );
    assert_eq!(rule.counter().await, CLOCK.to_string());
    assert_eq!(
        rule.issue(CLOCK, "").await,
        CLOCK + 1,
        "the same µs: the counter"
    );
    rule.set_counter(CLOCK + 5_000).await;
    assert_eq!(rule.issue(CLOCK + 10, "").await, CLOCK + 5_001);
    rule.set_counter(3).await;
    assert_eq!(
        rule.issue(CLOCK + 20, "").await,
        CLOCK + 20,
        "a small counter is overtaken"
    );
    // Exact near the largest µs a double holds exactly (2^53 ≈ 9.007e15).
    let late = 9_000_000_000_999_999;
    assert_eq!(rule.issue(late, "").await, late);
    assert_eq!(rule.counter().await, late.to_string());
}

#[tokio::test]
async fn a_proposal_is_taken_only_above_the_rule_and_within_100_ms_of_the_clock() {
    let server = PrivateRedis::start(&[]);
    let mut rule = Rule::new(&server, FENCE, "fence:b").await;
    let within = CLOCK + 50_000;
    assert_eq!(rule.issue(CLOCK, &within.to_string()).await, within);
    assert_eq!(rule.counter().await, within.to_string());
    let too_far = CLOCK + 1_000 + 100_001;
    assert_eq!(
        rule.issue(CLOCK + 1_000, &too_far.to_string()).await,
        within + 1
    );
    let below = within - 7;
    assert_eq!(
        rule.issue(CLOCK + 2_000, &below.to_string()).await,
        within + 2
    );
    assert_eq!(rule.issue(CLOCK + 3_000, "not a number").await, within + 3);
}

#[tokio::test]
async fn the_counter_only_rule_ignores_clock_and_proposal() {
    let server = PrivateRedis::start(&[]);
    let mut rule = Rule::new(&server, COUNTER_ONLY, "fence:c").await;
    assert_eq!(rule.issue(CLOCK, "").await, 1);
    assert_eq!(rule.issue(CLOCK, &(CLOCK + 50_000).to_string()).await, 2);
}
