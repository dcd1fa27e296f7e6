; The Windows installer: a per-user install (no administrator rights) with a
; Start-menu entry, an optional start at login, a Windows Firewall rule that
; lets friends on private networks reach the P2P port, and an uninstaller.
;
;   makensis -DDEFINES=defines.nsh -DAPP_EXE=potluck.exe -DAPP_ICON=potluck.ico \
;            -DOUTFILE=potluck-setup.exe [-DLICENSE=LICENSE] [-DLLAMA_DIR=dir] [-DSIGN=sign-command] potluck.nsi
;
; DEFINES is written by the packaging program from FyneApp.toml. LICENSE,
; when given, is shown before installing and installed as LICENSE.txt. LLAMA_DIR,
; when given, is a Windows llama.cpp runtime copied to the llama\ folder next
; to the program, where Potluck looks first. SIGN, when given, signs the
; uninstaller and the installer; it is called with the file as its argument.

; A 64-bit installer for a 64-bit program.
Target amd64-unicode
ManifestDPIAware true
RequestExecutionLevel user
SetCompressor /SOLID lzma

!include "${DEFINES}"
!include "MUI2.nsh"
!include "LogicLib.nsh"

!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${APP_ID}"
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"
; The P2P port Potluck listens on (netmesh's default), and its firewall rule.
!define P2P_PORT 4101
!define FIREWALL_RULE "${APP_NAME} (P2P)"

Name "${APP_NAME}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\${APP_NAME}"
InstallDirRegKey HKCU "Software\${APP_NAME}" "InstallDir"
BrandingText "${APP_NAME} ${APP_VERSION}"

VIProductVersion "${APP_VERSION4}"
VIAddVersionKey "ProductName" "${APP_NAME}"
VIAddVersionKey "ProductVersion" "${APP_VERSION}"
VIAddVersionKey "FileVersion" "${APP_VERSION}"
VIAddVersionKey "FileDescription" "${APP_NAME} installer"
VIAddVersionKey "CompanyName" "${APP_PUBLISHER}"
VIAddVersionKey "LegalCopyright" "${APP_PUBLISHER}"

!ifdef SIGN
!uninstfinalize '${SIGN} "%1"'
!finalize '${SIGN} "%1"'
!endif

!define MUI_ICON "${APP_ICON}"
!define MUI_UNICON "${APP_ICON}"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC
!define MUI_FINISHPAGE_RUN "$INSTDIR\${APP_CMD}.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP_NAME} now"

!insertmacro MUI_PAGE_WELCOME
!ifdef LICENSE
!insertmacro MUI_PAGE_LICENSE "${LICENSE}"
!endif
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

; stopRunning ends this user's running copy so its files can be replaced.
!macro stopRunning
  nsExec::Exec 'taskkill /IM "${APP_CMD}.exe" /F'
  Pop $0
  Sleep 500
!macroend

Section "${APP_NAME}" SecApp
  SectionIn RO
  !insertmacro stopRunning
  SetOutPath "$INSTDIR"
  File "/oname=${APP_CMD}.exe" "${APP_EXE}"
!ifdef LICENSE
  File "/oname=LICENSE.txt" "${LICENSE}"
!endif
  RMDir /r "$INSTDIR\llama"
!ifdef LLAMA_DIR
  SetOutPath "$INSTDIR\llama"
  File /r "${LLAMA_DIR}\*.*"
  SetOutPath "$INSTDIR"
!endif
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortcut "$SMPROGRAMS\${APP_NAME}.lnk" "$INSTDIR\${APP_CMD}.exe" "" "$INSTDIR\${APP_CMD}.exe" 0

  WriteRegStr HKCU "Software\${APP_NAME}" "InstallDir" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${APP_NAME}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${APP_VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\${APP_CMD}.exe,0"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "${APP_PUBLISHER}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "URLInfoAbout" "${APP_WEBSITE}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
SectionEnd

; The same Run value the tray's "Start at login" writes, so the menu shows it on.
Section /o "Start ${APP_NAME} when I sign in" SecLogin
  WriteRegStr HKCU "${RUN_KEY}" "${APP_NAME}" '"$INSTDIR\${APP_CMD}.exe"'
SectionEnd

; netsh needs an administrator: the commands run as they are when the
; installer is elevated, and otherwise Windows is asked for them (one UAC
; prompt, rather than the firewall's own when the first friend connects). A
; silent install that is not elevated skips the prompt; its log says so.
!macro firewall CMDS
  nsExec::ExecToLog 'cmd /s /c "${CMDS}"'
  Pop $0
  ${If} $0 != 0
    ${If} ${Silent}
      DetailPrint "The firewall rule needs an administrator: run the installer as one to add it."
    ${Else}
      ExecShellWait "runas" "cmd" '/s /c "${CMDS}"' SW_HIDE
    ${EndIf}
  ${EndIf}
!macroend

!define FW_DELETE 'netsh advfirewall firewall delete rule name="${FIREWALL_RULE}"'
!define FW_ADD 'netsh advfirewall firewall add rule name="${FIREWALL_RULE}" dir=in action=allow program="$INSTDIR\${APP_CMD}.exe" protocol=TCP localport=${P2P_PORT} profile=private enable=yes'

Section "Let friends on private networks reach ${APP_NAME} (Windows Firewall)" SecFirewall
  !insertmacro firewall '${FW_DELETE} >nul 2>&1 & ${FW_ADD}'
  WriteRegDWORD HKCU "Software\${APP_NAME}" "FirewallRule" 1
SectionEnd

Section "-size"
  SectionGetSize ${SecApp} $0
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" $0
SectionEnd

Section "Uninstall"
  !insertmacro stopRunning
  ReadRegDWORD $1 HKCU "Software\${APP_NAME}" "FirewallRule"
  ${If} $1 == 1
    !insertmacro firewall '${FW_DELETE}'
  ${EndIf}
  DeleteRegValue HKCU "${RUN_KEY}" "${APP_NAME}"
  Delete "$SMPROGRAMS\${APP_NAME}.lnk"
  Delete "$INSTDIR\${APP_CMD}.exe"
  Delete "$INSTDIR\LICENSE.txt"
  RMDir /r "$INSTDIR\llama"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  DeleteRegKey HKCU "Software\${APP_NAME}"
SectionEnd
