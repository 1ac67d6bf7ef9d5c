//! The confchange suite's handler (etcd's `confchange/datadriven_test.go`): one changer over a
//! tracker per file; `simple`, `enter-joint [autoleave=bool]` and `leave-joint` print the new
//! configuration and progress, or the error. The last index grows by one after every command,
//! failed ones included, so a progress's `next` tells in which command it was created.

use super::datadriven::TestData;
use raftcore::confchange::Changer;
use raftcore::raftpb::conf_changes_from_string;
use raftcore::tracker::ProgressTracker;

pub fn new_handler() -> crate::Handler {
    let mut tracker = ProgressTracker::new(10, 0);
    let mut last_index = 0u64;
    Box::new(move |td: &TestData| {
        let out = run(&mut tracker, last_index, td);
        last_index += 1;
        out
    })
}

fn run(tracker: &mut ProgressTracker, last_index: u64, td: &TestData) -> String {
    let ccs = match conf_changes_from_string(&td.input) {
        Ok(ccs) => ccs,
        Err(e) => return format!("{e}\n"),
    };
    let changer = Changer {
        tracker,
        last_index,
    };
    let result = match td.cmd.as_str() {
        "simple" => changer.simple(&ccs),
        "enter-joint" => {
            let auto_leave = match td.arg("autoleave") {
                None => false,
                Some([v]) => match v.parse::<bool>() {
                    Ok(b) => b,
                    Err(e) => return format!("autoleave={v}: {e}\n"),
                },
                Some(v) => return format!("autoleave takes one value, got {v:?}\n"),
            };
            changer.enter_joint(auto_leave, &ccs)
        }
        "leave-joint" => {
            if !ccs.is_empty() {
                return "this command takes no input\n".to_string();
            }
            changer.leave_joint()
        }
        other => return format!("unknown command {other}\n"),
    };
    match result {
        Ok((config, progress)) => {
            tracker.config = config;
            tracker.progress = progress;
            format!("{}\n{}", tracker.config, tracker.progress)
        }
        Err(e) => format!("{e}\n"),
    }
}
