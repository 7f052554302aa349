//! The Heroku simulator: a real axum server backed by real `redis-server` processes.
