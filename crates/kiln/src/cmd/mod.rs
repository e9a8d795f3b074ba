pub mod doctor;
pub mod validate;
