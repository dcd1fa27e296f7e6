package engine

// ModelFiles is modelFiles, for the tests outside the package.
var ModelFiles = modelFiles
