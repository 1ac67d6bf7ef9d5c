//! The confchange suite's handler.

use super::datadriven::TestData;

pub fn new_handler() -> crate::Handler {
    Box::new(|_td: &TestData| "unknown command".to_string())
}
