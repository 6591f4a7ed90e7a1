'use strict';
// Bindings in progress: the native addon is built by `make node`.
module.exports = require('./channel-messaging.node');
