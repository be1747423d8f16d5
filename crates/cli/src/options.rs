//! The pipeline options shared by `run` and `submit` (their flags built from
//! [`RunOptions::SCHEMA`]), and the value parsers.

use std::time::Duration;

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use pipeline::{OptionValue, RunOptions};

/// The run options on the command line: one flag per [`RunOptions::SCHEMA`] entry (`no_face`
/// as `--no-face`), its help, value name and default from the schema, each value read by
/// [`RunOptions::set`] (the one parser of every option string), so that a bad value is a usage
/// error naming the flag. Unset flags keep [`RunOptions::default`].
#[derive(Debug, Clone, Default)]
pub(crate) struct JobArgs {
    pub(crate) options: RunOptions,
}

impl Args for JobArgs {
    fn augment_args(cmd: Command) -> Command {
        cmd.args(RunOptions::SCHEMA.iter().map(|info| {
            let name = info.name;
            Arg::new(name)
                .long(name.replace('_', "-"))
                .value_name(info.value_name)
                // `--silence-threshold -50`: a negative number is a value, not a flag.
                .allow_negative_numbers(true)
                .help(format!(
                    "{} [default: {}]",
                    info.help,
                    info.kind.default_text()
                ))
                .value_parser(move |text: &str| {
                    RunOptions::default()
                        .set(name, OptionValue::Text(text))
                        .map(|()| text.to_owned())
                })
        }))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for JobArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for info in RunOptions::SCHEMA {
            if let Some(text) = matches.get_one::<String>(info.name) {
                self.options
                    .set(info.name, OptionValue::Text(text))
                    .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, e))?;
            }
        }
        Ok(())
    }
}

/// Seconds, fractions allowed: `30`, `0.5`.
pub(crate) fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s}: expected a number of seconds"))?;
    Duration::try_from_secs_f64(v).map_err(|_| format!("{s}: expected a non-negative number"))
}
