package server

// RewriteRequest is rewriteRequest, for the tests of package server_test.
var RewriteRequest = rewriteRequest
